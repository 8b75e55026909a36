def extract():
    print("extract() function has been called")


def transform(ds_nodash):
    print("transform() function has been called")


def load(database_name, table_name):
    print("load() function has been called")
