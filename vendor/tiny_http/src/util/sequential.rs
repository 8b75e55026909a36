use std::io::Result as IoResult;
use std::io::{BufRead, Read, Write};

use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use std::mem;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    next: Sender<R>,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    on_finish: Sender<()>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        let (tx, rx) = channel();

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => Some(SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: tx,
            }),

            SequentialReaderBuilderInner::NotFirst(previous) => Some(SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: tx,
            }),
        }
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        let (tx, rx) = channel();
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        Some(SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: tx,
        })
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut reader = match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => return reader.read(buf),
            SequentialReaderInner::Waiting(ref mut recv) => recv.recv().unwrap(),
            SequentialReaderInner::Empty => unreachable!(),
        };

        let result = reader.read(buf);
        self.inner = SequentialReaderInner::MyTurn(reader);
        result
    }
}

impl<R: BufRead + Send> SequentialReader<R> {
    /// Waits for this reader's turn, then for its first byte: true when there is one,
    /// false at the end of the stream. Nothing is consumed. (Patch.)
    pub fn fill_buf_first(&mut self) -> IoResult<bool> {
        if let SequentialReaderInner::Waiting(ref mut recv) = self.inner {
            let reader = recv.recv().unwrap();
            self.inner = SequentialReaderInner::MyTurn(reader);
        }
        match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => Ok(!reader.fill_buf()?.is_empty()),
            _ => unreachable!(),
        }
    }
}

impl<W: Write + Send> SequentialWriter<W> {
    /// Takes this writer's wait for the writers before it: the writer no longer waits
    /// by itself, so whoever holds the `Turn` must wait on it before anything is
    /// written. (Patch.)
    pub fn take_turn(&mut self) -> Turn {
        Turn(self.trigger.take())
    }
}

/// The wait for the writers before one `SequentialWriter` to be done. (Patch.)
pub struct Turn(Option<Receiver<()>>);

impl Turn {
    /// Waits until the writers before are done.
    pub fn wait(&mut self) {
        if let Some(v) = self.0.take() {
            v.recv().ok();
        }
    }

    /// True once the writers before are done; never waits.
    pub fn came(&mut self) -> bool {
        match self.0.as_ref().map(|v| v.try_recv()) {
            None => true,
            Some(Err(std::sync::mpsc::TryRecvError::Empty)) => false,
            Some(_) => {
                self.0 = None;
                true
            }
        }
    }
}

/// Patch: how a writer takes a vectored write. `BufWriter` passes one on only when its
/// inner writer says it writes vectors (`is_write_vectored`, which only the standard
/// library's own writers can say yet), and otherwise sends a reply's head from its
/// buffer and then the body: two `send`s, and with `TCP_NODELAY` two segments.
pub trait WriteThrough: Write {
    fn write_through(&mut self, bufs: &[std::io::IoSlice<'_>]) -> IoResult<usize>;
}

impl<W: Write> WriteThrough for std::io::BufWriter<W> {
    /// What fills the buffer goes straight to the inner writer, after what the buffer
    /// holds; what fits is buffered.
    fn write_through(&mut self, bufs: &[std::io::IoSlice<'_>]) -> IoResult<usize> {
        let len = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
        if len < self.capacity() {
            return self.write_vectored(bufs);
        }
        self.flush()?;
        self.get_mut().write_vectored(bufs)
    }
}

impl<W: WriteThrough + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().write(buf)
    }

    // Patch: passed on, past the buffer when they fill it, so a reply's head and body
    // leave in one `writev`.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> IoResult<usize> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().write_through(bufs)
    }

    fn flush(&mut self) -> IoResult<()> {
        if let Some(v) = self.trigger.as_mut() {
            v.recv().unwrap()
        }
        self.trigger = None;

        self.writer.lock().unwrap().flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        match inner {
            SequentialReaderInner::MyTurn(reader) => {
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Waiting(recv) => {
                let reader = recv.recv().unwrap();
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Empty => (),
        }
    }
}

impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        self.on_finish.send(()).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufWriter, IoSlice};

    /// A socket that records each call that reached it, taking every byte offered.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> IoResult<usize> {
            self.0.push(bufs.iter().flat_map(|b| b.iter().copied()).collect());
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> IoResult<()> {
            Ok(())
        }
    }

    /// Writes all of `bufs` as the server writes a reply: vectored, again until done.
    fn write_all(w: &mut BufWriter<Calls>, head: &[u8], body: &[u8]) {
        let mut bufs = [IoSlice::new(head), IoSlice::new(body)];
        let mut bufs = &mut bufs[..];
        while !bufs.is_empty() {
            let n = w.write_through(bufs).unwrap();
            IoSlice::advance_slices(&mut bufs, n);
        }
        w.flush().unwrap();
    }

    #[test]
    fn a_reply_that_fills_the_buffer_reaches_the_socket_in_one_call() {
        let mut w = BufWriter::with_capacity(1024, Calls::default());
        // What a previous small reply left in the buffer goes first, on its own.
        w.write_all(b"earlier").unwrap();
        let (head, body) = (vec![b'h'; 150], vec![b'b'; 100_000]);
        write_all(&mut w, &head, &body);
        let calls = &w.get_ref().0;
        assert_eq!(calls.len(), 2, "{:?}", calls.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!(calls[0], b"earlier");
        assert_eq!(calls[1], [head, body].concat());
    }

    #[test]
    fn a_small_reply_is_buffered_whole() {
        let mut w = BufWriter::with_capacity(1024, Calls::default());
        write_all(&mut w, b"head ", b"body");
        assert_eq!(w.get_ref().0, [b"head body".to_vec()]);
    }
}
