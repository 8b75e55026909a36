def print_hello():
    print("hello")


def print_hello_from_callback(context):
    print("hello from callback")
