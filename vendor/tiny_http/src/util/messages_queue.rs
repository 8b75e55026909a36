use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

enum Control<T> {
    Elem(T),
    Unblock,
}

/// Patch: two lanes. Elements pushed with `push_first` are popped before any other,
/// and `pop_first_timeout` waits for those alone, so a consumer can be kept for them
/// without taking (and having to hand back) the rest.
struct Lanes<T> {
    first: VecDeque<T>,
    rest: VecDeque<Control<T>>,
}

pub struct MessagesQueue<T>
where
    T: Send,
{
    queue: Mutex<Lanes<T>>,
    condvar: Condvar,
    /// Woken for `push_first` only. (Patch.)
    first_condvar: Condvar,
}

impl<T> MessagesQueue<T>
where
    T: Send,
{
    pub fn with_capacity(capacity: usize) -> Arc<MessagesQueue<T>> {
        Arc::new(MessagesQueue {
            queue: Mutex::new(Lanes {
                first: VecDeque::new(),
                rest: VecDeque::with_capacity(capacity),
            }),
            condvar: Condvar::new(),
            first_condvar: Condvar::new(),
        })
    }

    /// Pushes an element to the queue.
    pub fn push(&self, value: T) {
        let mut queue = self.queue.lock().unwrap();
        queue.rest.push_back(Control::Elem(value));
        self.condvar.notify_one();
    }

    /// Pushes an element that is popped before every other. (Patch.)
    pub fn push_first(&self, value: T) {
        let mut queue = self.queue.lock().unwrap();
        queue.first.push_back(value);
        self.condvar.notify_one();
        self.first_condvar.notify_one();
    }

    /// Unblock one thread stuck in pop loop.
    pub fn unblock(&self) {
        let mut queue = self.queue.lock().unwrap();
        queue.rest.push_back(Control::Unblock);
        self.condvar.notify_one();
    }

    /// The next element, first lane first; `Err` for an `unblock()`.
    fn take(queue: &mut Lanes<T>) -> Option<Result<T, ()>> {
        if let Some(value) = queue.first.pop_front() {
            return Some(Ok(value));
        }
        match queue.rest.pop_front() {
            Some(Control::Elem(value)) => Some(Ok(value)),
            Some(Control::Unblock) => Some(Err(())),
            None => None,
        }
    }

    /// Pops an element. Blocks until one is available.
    /// Returns None in case unblock() was issued.
    pub fn pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();

        loop {
            if let Some(got) = Self::take(&mut queue) {
                return got.ok();
            }
            queue = self.condvar.wait(queue).unwrap();
        }
    }

    /// Tries to pop an element without blocking.
    pub fn try_pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();
        Self::take(&mut queue).and_then(Result::ok)
    }

    /// Tries to pop an element without blocking
    /// more than the specified timeout duration
    /// or unblock() was issued
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut queue = self.queue.lock().unwrap();
        loop {
            if let Some(got) = Self::take(&mut queue) {
                return got.ok();
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            queue = self.condvar.wait_timeout(queue, left).unwrap().0;
        }
    }

    /// Pops an element of the first lane, waiting at most `timeout`; the rest stay
    /// for others. (Patch.)
    pub fn pop_first_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut queue = self.queue.lock().unwrap();
        loop {
            if let Some(value) = queue.first.pop_front() {
                return Some(value);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            queue = self.first_condvar.wait_timeout(queue, left).unwrap().0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MessagesQueue;
    use std::time::Duration;

    /// (Patch.) The first lane is popped before the rest, and a consumer waiting for the
    /// first lane alone leaves the rest queued.
    #[test]
    fn the_first_lane_comes_first_and_alone_to_its_own_waiters() {
        let q = MessagesQueue::with_capacity(4);
        q.push(1);
        q.push(2);
        assert_eq!(q.pop_first_timeout(Duration::from_millis(10)), None);
        q.push_first(10);
        assert_eq!(q.pop_first_timeout(Duration::from_millis(10)), Some(10));
        q.push_first(11);
        assert_eq!(q.pop_timeout(Duration::from_millis(10)), Some(11));
        assert_eq!(q.pop_timeout(Duration::from_millis(10)), Some(1));
        assert_eq!(q.try_pop(), Some(2));
        assert_eq!(q.pop_timeout(Duration::from_millis(10)), None);
    }
}
