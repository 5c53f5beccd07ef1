//! A container's log: what it writes to stdout and stderr, one file per
//! run of the container, in the CRI log format the kubelet writes
//! (`<RFC 3339 time> <stdout|stderr> <F|P> <text>`, `P` for a piece of a
//! line too long to keep whole), rotated at a size bound so that a chatty
//! container cannot fill the node's disk.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes one log file grows to before it is rotated (the kubelet's
/// `containerLogMaxSize` default).
pub const LOG_FILE_BYTES_MAX: u64 = 10 << 20;

/// Files kept per run of a container, the current one included (the
/// kubelet's `containerLogMaxFiles` default).
pub const LOG_FILES_MAX: u32 = 5;

/// Bytes of a line kept whole; a longer line is written in pieces.
pub const LINE_BYTES_MAX: usize = 16 << 10;

/// Which of a container's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Output {
    fn tag(self) -> &'static str {
        match self {
            Output::Stdout => "stdout",
            Output::Stderr => "stderr",
        }
    }
}

/// The log of one run of a container, written as it runs.
#[derive(Clone)]
pub struct ContainerLog {
    inner: Arc<Mutex<Writer>>,
}

struct Writer {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
    partial: [Vec<u8>; 2],
}

impl ContainerLog {
    /// A log written to `path` (created, or appended to), rotated at
    /// `max_bytes`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        let writer =
            Writer { path: path.to_owned(), file: Some(file), written, max_bytes, partial: Default::default() };
        Ok(Self { inner: Arc::new(Mutex::new(writer)) })
    }

    /// The stream the container's `output` writes to.
    pub fn stream(&self, output: Output) -> LogStream {
        LogStream { log: self.clone(), output }
    }

    /// Appends `bytes` written to `output`: every whole line, and pieces
    /// of lines longer than [`LINE_BYTES_MAX`]; the rest waits for its end.
    pub fn write(&self, output: Output, bytes: &[u8]) {
        let mut writer = self.inner.lock().expect("container log lock");
        writer.write(output, bytes, Utc::now());
    }

    /// Writes what is left of unfinished lines: the container has ended.
    pub fn finish(&self) {
        let mut writer = self.inner.lock().expect("container log lock");
        let now = Utc::now();
        for output in [Output::Stdout, Output::Stderr] {
            let rest = std::mem::take(&mut writer.partial[output as usize]);
            if !rest.is_empty() {
                writer.line(output, &rest, true, now);
            }
        }
        if let Some(file) = writer.file.as_mut() {
            let _ = file.flush();
        }
    }
}

impl Writer {
    fn write(&mut self, output: Output, mut bytes: &[u8], now: DateTime<Utc>) {
        while !bytes.is_empty() {
            let pending = &mut self.partial[output as usize];
            match bytes.iter().position(|b| *b == b'\n') {
                Some(end) if pending.len() + end <= LINE_BYTES_MAX => {
                    let mut line = std::mem::take(pending);
                    line.extend_from_slice(&bytes[..end]);
                    self.line(output, &line, true, now);
                    bytes = &bytes[end + 1..];
                }
                _ => {
                    let room = LINE_BYTES_MAX - pending.len();
                    let take = bytes.len().min(room);
                    pending.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if pending.len() == LINE_BYTES_MAX {
                        let piece = std::mem::take(pending);
                        self.line(output, &piece, false, now);
                    }
                }
            }
        }
    }

    fn line(&mut self, output: Output, text: &[u8], whole: bool, now: DateTime<Utc>) {
        let mut record = Vec::with_capacity(text.len() + 48);
        record.extend_from_slice(now.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        record.push(b' ');
        record.extend_from_slice(output.tag().as_bytes());
        record.extend_from_slice(if whole { b" F " } else { b" P " });
        record.extend_from_slice(text);
        record.push(b'\n');
        if self.written + record.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate();
        }
        let Some(file) = self.file.as_mut() else { return };
        match file.write_all(&record) {
            Ok(()) => self.written += record.len() as u64,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "a container's log line was lost");
            }
        }
    }

    /// Moves the current file to `.1` (and each older one up a number,
    /// dropping the oldest) and starts a new one.
    fn rotate(&mut self) {
        self.file = None;
        for n in (1..LOG_FILES_MAX).rev() {
            let from = if n == 1 { self.path.clone() } else { numbered(&self.path, n - 1) };
            let _ = std::fs::rename(&from, numbered(&self.path, n));
        }
        match open_append(&self.path) {
            Ok(file) => {
                self.file = Some(file);
                self.written = 0;
            }
            Err(error) => tracing::warn!(path = %self.path.display(), %error, "a container's log could not rotate"),
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// One of a container's outputs, as WASI's stdout or stderr.
pub struct LogStream {
    log: ContainerLog,
    output: Output,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LogStream { log: self.log.clone(), output: self.output })
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        self.log.write(self.output, bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a reader of a log asks for, as `kubectl logs` does.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Only the last this many lines.
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Each line prefixed with its time.
    pub timestamps: bool,
    /// At most this many bytes of output.
    pub limit_bytes: Option<usize>,
}

/// One record of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it was written, as the file has it (RFC 3339).
    pub time: String,
    /// The text, without its line end.
    pub text: String,
    /// Whether it ends its line (`F`) or is a piece of a longer one (`P`).
    pub whole: bool,
}

impl Record {
    /// Parses one line of a log file; `None` for a line not in the format.
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        let (time, _output, tag) = (parts.next()?, parts.next()?, parts.next()?);
        let text = parts.next().unwrap_or_default();
        let whole = match tag {
            "F" => true,
            "P" => false,
            _ => return None,
        };
        Some(Self { time: time.to_owned(), text: text.to_owned(), whole })
    }

    /// The record as `kubectl logs` prints it.
    pub fn render(&self, timestamps: bool, out: &mut Vec<u8>) {
        if timestamps {
            out.extend_from_slice(self.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.text.as_bytes());
        if self.whole {
            out.push(b'\n');
        }
    }

    /// Whether it was written at or after `since`.
    pub fn at_or_after(&self, since: &DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.time).is_ok_and(|t| t.with_timezone(&Utc) >= *since)
    }
}

/// The records of the log at `path`: its rotated files first, oldest
/// first, then the current file (only its first `current_len` bytes, when
/// given, so that a follower can go on from there).
///
/// # Errors
/// A file cannot be read.
pub fn records(path: &Path, current_len: Option<u64>) -> std::io::Result<Vec<Record>> {
    use std::io::Read;
    let mut files: Vec<PathBuf> = (1..LOG_FILES_MAX).rev().map(|n| numbered(path, n)).filter(|p| p.exists()).collect();
    files.push(path.to_owned());
    let mut records = Vec::new();
    let last = files.len() - 1;
    for (index, file) in files.into_iter().enumerate() {
        let opened = match File::open(&file) {
            Ok(opened) => opened,
            // A rotation moved it away since the listing.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && index < last => continue,
            Err(error) => return Err(error),
        };
        let limit = if index == last { current_len.unwrap_or(u64::MAX) } else { u64::MAX };
        for line in BufReader::new(opened.take(limit)).lines() {
            records.extend(Record::parse(&line?));
        }
    }
    Ok(records)
}

/// `records` as `options` selects and renders them.
pub fn select(mut records: Vec<Record>, options: &ReadOptions) -> Vec<u8> {
    if let Some(since) = &options.since {
        records.retain(|record| record.at_or_after(since));
    }
    if let Some(tail) = options.tail {
        let whole_lines: Vec<usize> = records.iter().enumerate().filter(|(_, r)| r.whole).map(|(i, _)| i).collect();
        let first = match whole_lines.len().checked_sub(tail + 1) {
            Some(before) => whole_lines[before] + 1,
            None => 0,
        };
        records.drain(..first.min(records.len()));
    }
    let mut out = Vec::new();
    for record in &records {
        record.render(options.timestamps, &mut out);
        if options.limit_bytes.is_some_and(|limit| out.len() >= limit) {
            break;
        }
    }
    if let Some(limit) = options.limit_bytes {
        out.truncate(limit);
    }
    out
}

/// The log at `path` as `options` selects it, rendered.
///
/// # Errors
/// A file cannot be read.
pub fn read(path: &Path, options: &ReadOptions) -> std::io::Result<Vec<u8>> {
    Ok(select(records(path, None)?, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect()
    }

    #[test]
    fn lines_are_kept_whole_and_long_ones_in_pieces() {
        // Goal: whole lines as F records, unfinished ones at the end, a
        // line over the bound in P pieces that read back as one line.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        let log = ContainerLog::create(&path, LOG_FILE_BYTES_MAX).expect("log");
        log.write(Output::Stdout, b"one\ntw");
        log.write(Output::Stderr, b"err\n");
        log.write(Output::Stdout, b"o\n");
        let long = vec![b'x'; LINE_BYTES_MAX + 10];
        log.write(Output::Stdout, &long);
        log.write(Output::Stdout, b"\nlast");
        log.finish();
        let raw = std::fs::read_to_string(&path).expect("read");
        let tags: Vec<&str> = raw.lines().map(|l| l.split(' ').nth(1).expect("output")).collect();
        assert_eq!(tags, ["stdout", "stderr", "stdout", "stdout", "stdout", "stdout"]);
        assert_eq!(raw.lines().filter(|l| l.split(' ').nth(2) == Some("P")).count(), 1, "{raw}");
        let all = read(&path, &ReadOptions::default()).expect("read");
        let long_line = "x".repeat(LINE_BYTES_MAX + 10);
        assert_eq!(lines(&all), ["one", "err", "two", long_line.as_str(), "last"]);
        let tail = read(&path, &ReadOptions { tail: Some(2), ..ReadOptions::default() }).expect("tail");
        assert_eq!(lines(&tail), [long_line.as_str(), "last"]);
        let stamped = read(&path, &ReadOptions { tail: Some(1), timestamps: true, ..ReadOptions::default() });
        let stamped = lines(&stamped.expect("timestamps"));
        let (time, text) = stamped[0].split_once(' ').expect("a time first");
        assert!(DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert_eq!(text, "last");
        let limited = read(&path, &ReadOptions { limit_bytes: Some(5), ..ReadOptions::default() }).expect("limit");
        assert_eq!(limited, b"one\ne");
    }

    #[test]
    fn a_full_file_rotates_and_old_files_go() {
        // Goal: the files stay within their bound; reading spans the
        // rotated files in order; the oldest beyond the count are gone.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        let log = ContainerLog::create(&path, 1024).expect("log");
        for n in 0..200 {
            log.write(Output::Stdout, format!("line {n:04}\n").as_bytes());
        }
        for file in std::fs::read_dir(dir.path()).expect("dir") {
            let size = file.expect("entry").metadata().expect("metadata").len();
            assert!(size <= 1024, "a file of {size} bytes");
        }
        assert!(numbered(&path, LOG_FILES_MAX - 1).exists());
        assert!(!numbered(&path, LOG_FILES_MAX).exists());
        let all = lines(&read(&path, &ReadOptions::default()).expect("read"));
        assert_eq!(all.last().map(String::as_str), Some("line 0199"));
        let numbers: Vec<u32> = all.iter().map(|l| l[5..].parse().expect("number")).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "in order, none missing between");
    }

    #[test]
    fn since_keeps_later_lines() {
        // Goal: --since selects by the time each line was written.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        let log = ContainerLog::create(&path, LOG_FILE_BYTES_MAX).expect("log");
        let mut writer = log.inner.lock().expect("lock");
        let early = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("time").with_timezone(&Utc);
        writer.write(Output::Stdout, b"early\n", early);
        writer.write(Output::Stdout, b"late\n", early + chrono::Duration::hours(1));
        drop(writer);
        let since = Some(early + chrono::Duration::minutes(30));
        assert_eq!(lines(&read(&path, &ReadOptions { since, ..ReadOptions::default() }).expect("read")), ["late"]);
    }
}
