//! The embedded log: per topic a directory, per partition an append-only file of CRC-framed records.
//!
//! Record layout: payload length (u32 LE), CRC-32 of the payload (u32 LE), then the payload: key
//! length (u32 LE), key, value. On open, a torn or damaged tail (a crash mid-append) is cut off at
//! the last whole record. Offsets are record numbers; a sparse index finds where reading starts.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{
    Delivery, EventLog, LogConsumer, LogError, Position, Record, check_name, lock, partition_for, unavailable,
};

const HEADER_LEN: usize = 8;
const KEY_LENGTH_LEN: usize = 4;
/// One index entry per this many records.
const INDEX_STRIDE: u64 = 1_024;
/// How much one read fetches from a partition file.
const READ_CHUNK: usize = 1 << 20;
/// Largest record accepted (key and value).
const MAX_RECORD: usize = 16 << 20;

/// One partition's file, its length and the sparse offset index.
#[derive(Debug)]
struct PartitionFile {
    appender: File,
    reader: File,
    length: u64,
    next_offset: u64,
    /// File position of offsets 0, INDEX_STRIDE, 2 * INDEX_STRIDE, ...
    index: Vec<u64>,
}

/// What one read found.
struct ReadResult {
    records: Vec<Record>,
    next_offset: u64,
}

impl PartitionFile {
    /// Opens (or creates) the file, keeping every whole record and cutting off a damaged tail.
    fn open(path: &Path) -> Result<Self, LogError> {
        let appender = OpenOptions::new().create(true).append(true).read(true).open(path).map_err(unavailable)?;
        let reader = File::open(path).map_err(unavailable)?;
        let mut scanner = BufReader::with_capacity(READ_CHUNK, File::open(path).map_err(unavailable)?);
        let (mut length, mut next_offset, mut index) = (0u64, 0u64, Vec::new());
        let mut header = [0u8; HEADER_LEN];
        let mut payload = Vec::new();
        loop {
            if scanner.read_exact(&mut header).is_err() {
                break;
            }
            let payload_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if !(KEY_LENGTH_LEN..=MAX_RECORD + KEY_LENGTH_LEN).contains(&payload_len) {
                break;
            }
            payload.resize(payload_len, 0);
            if scanner.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
                break;
            }
            if next_offset.is_multiple_of(INDEX_STRIDE) {
                index.push(length);
            }
            length += (HEADER_LEN + payload_len) as u64;
            next_offset += 1;
        }
        if appender.metadata().map_err(unavailable)?.len() != length {
            appender.set_len(length).map_err(unavailable)?;
            appender.sync_all().map_err(unavailable)?;
        }
        Ok(Self { appender, reader, length, next_offset, index })
    }

    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<u64, LogError> {
        if key.len() + value.len() > MAX_RECORD {
            return Err(LogError::Invalid(format!("record of {} bytes exceeds {MAX_RECORD}", key.len() + value.len())));
        }
        let payload_len = KEY_LENGTH_LEN + key.len() + value.len();
        let mut frame = Vec::with_capacity(HEADER_LEN + payload_len);
        frame.extend_from_slice(&(payload_len as u32).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&(key.len() as u32).to_le_bytes());
        frame.extend_from_slice(key);
        frame.extend_from_slice(value);
        let crc = crc32fast::hash(&frame[HEADER_LEN..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        self.appender.write_all(&frame).map_err(unavailable)?;
        let offset = self.next_offset;
        if offset.is_multiple_of(INDEX_STRIDE) {
            self.index.push(self.length);
        }
        self.length += frame.len() as u64;
        self.next_offset += 1;
        Ok(offset)
    }

    /// Up to `max` records from `from` on, reading at most about one chunk.
    fn read(&self, partition: u32, from: u64, max: usize) -> Result<ReadResult, LogError> {
        let mut records = Vec::new();
        if from >= self.next_offset || max == 0 {
            return Ok(ReadResult { records, next_offset: from.min(self.next_offset) });
        }
        let stride = (from / INDEX_STRIDE) as usize;
        let (mut position, mut offset) = (self.index[stride], stride as u64 * INDEX_STRIDE);
        let mut buffer = Vec::new();
        while position < self.length && records.len() < max {
            let wanted = (self.length - position).min(READ_CHUNK as u64) as usize;
            buffer.resize(wanted, 0);
            self.reader.read_exact_at(&mut buffer, position).map_err(unavailable)?;
            let mut cursor = 0;
            while cursor + HEADER_LEN <= buffer.len() && records.len() < max {
                let payload_len = u32::from_le_bytes(buffer[cursor..cursor + 4].try_into().expect("4 bytes")) as usize;
                let end = cursor + HEADER_LEN + payload_len;
                if end > buffer.len() {
                    break;
                }
                if offset >= from {
                    let payload = &buffer[cursor + HEADER_LEN..end];
                    let key_len = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
                    let key = payload.get(4..4 + key_len).ok_or_else(|| {
                        LogError::Corrupt(format!("partition {partition} offset {offset}: key longer than its record"))
                    })?;
                    records.push(Record {
                        partition,
                        offset,
                        key: key.to_vec(),
                        value: payload[4 + key_len..].to_vec(),
                    });
                }
                offset += 1;
                cursor = end;
            }
            if cursor == 0 {
                return Err(LogError::Corrupt(format!("partition {partition}: record at {position} exceeds a read")));
            }
            position += cursor as u64;
        }
        Ok(ReadResult { records, next_offset: offset.max(from) })
    }
}

/// One topic: its partitions and a signal for waiting consumers.
#[derive(Debug)]
struct TopicLog {
    directory: PathBuf,
    partitions: Vec<Mutex<PartitionFile>>,
    appended: Notify,
}

impl TopicLog {
    fn open(directory: PathBuf, partitions: u32) -> Result<Self, LogError> {
        std::fs::create_dir_all(directory.join("groups")).map_err(unavailable)?;
        let meta = directory.join("partitions");
        match std::fs::read_to_string(&meta) {
            Ok(text) if text.trim() != partitions.to_string() => {
                return Err(LogError::Invalid(format!(
                    "topic at {} has {} partitions, not {partitions}",
                    directory.display(),
                    text.trim()
                )));
            }
            Ok(_) => {}
            Err(_) => std::fs::write(&meta, partitions.to_string()).map_err(unavailable)?,
        }
        let partitions = (0..partitions)
            .map(|partition| PartitionFile::open(&directory.join(format!("{partition}.log"))).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self { directory, partitions, appended: Notify::new() })
    }

    fn offsets_path(&self, group: &str) -> PathBuf {
        self.directory.join("groups").join(format!("{group}.offsets"))
    }
}

/// A durable, partitioned log in one directory, for one machine.
#[derive(Debug, Clone)]
pub struct EmbeddedLog {
    root: PathBuf,
    partitions: u32,
    topics: Arc<Mutex<HashMap<String, Arc<TopicLog>>>>,
}

impl EmbeddedLog {
    /// A log under `root` whose topics have `partitions` partitions each.
    pub fn open(root: &Path, partitions: u32) -> Result<Self, LogError> {
        if partitions == 0 {
            return Err(LogError::Invalid("a topic needs at least one partition".into()));
        }
        std::fs::create_dir_all(root).map_err(unavailable)?;
        Ok(Self { root: root.to_owned(), partitions, topics: Arc::default() })
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicLog>, LogError> {
        check_name("topic", name)?;
        let mut topics = lock(&self.topics);
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        let topic = Arc::new(TopicLog::open(self.root.join(name), self.partitions)?);
        topics.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    type Consumer = EmbeddedConsumer;

    async fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Position, LogError> {
        let log = self.topic(topic)?;
        let partition = partition_for(key, self.partitions);
        let offset = lock(&log.partitions[partition as usize]).append(key, value)?;
        log.appended.notify_waiters();
        Ok(Position { partition, offset })
    }

    async fn flush(&self) -> Result<(), LogError> {
        let topics: Vec<Arc<TopicLog>> = lock(&self.topics).values().cloned().collect();
        for topic in topics {
            for partition in &topic.partitions {
                lock(partition).appender.sync_data().map_err(unavailable)?;
            }
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<EmbeddedConsumer, LogError> {
        check_name("group", group)?;
        let log = self.topic(topic)?;
        let offsets_path = log.offsets_path(group);
        let mut next = vec![0; log.partitions.len()];
        if let Ok(text) = std::fs::read_to_string(&offsets_path) {
            for line in text.lines() {
                let parsed = line.split_once(' ').and_then(|(partition, offset)| {
                    Some((partition.parse::<usize>().ok()?, offset.parse::<u64>().ok()?))
                });
                match parsed {
                    Some((partition, offset)) if partition < next.len() => next[partition] = offset,
                    _ => return Err(LogError::Corrupt(format!("{}: bad line {line:?}", offsets_path.display()))),
                }
            }
        }
        Ok(EmbeddedConsumer { log, offsets_path, committed: next.clone(), next, assigned: false, first_partition: 0 })
    }
}

/// The single member of its group on the embedded log: every partition is its own.
#[derive(Debug)]
pub struct EmbeddedConsumer {
    log: Arc<TopicLog>,
    offsets_path: PathBuf,
    next: Vec<u64>,
    committed: Vec<u64>,
    assigned: bool,
    /// Where the next poll starts, so no partition starves another.
    first_partition: usize,
}

impl EmbeddedConsumer {
    fn next_offset(&self, partition: u32) -> Result<u64, LogError> {
        self.log
            .partitions
            .get(partition as usize)
            .map(|file| lock(file).next_offset)
            .ok_or_else(|| LogError::Invalid(format!("partition {partition} is not assigned")))
    }

    fn read_available(&mut self, max_records: usize) -> Result<Vec<Record>, LogError> {
        let partitions = self.next.len();
        let mut records = Vec::new();
        for step in 0..partitions {
            let partition = (self.first_partition + step) % partitions;
            if records.len() >= max_records {
                break;
            }
            let read = lock(&self.log.partitions[partition]).read(
                partition as u32,
                self.next[partition],
                max_records - records.len(),
            )?;
            self.next[partition] = read.next_offset;
            records.extend(read.records);
        }
        self.first_partition = (self.first_partition + 1) % partitions;
        Ok(records)
    }
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Delivery, LogError> {
        if !self.assigned {
            self.assigned = true;
            return Ok(Delivery::Assigned((0..self.next.len() as u32).collect()));
        }
        let log = self.log.clone();
        let appended = log.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let records = self.read_available(max_records)?;
        if !records.is_empty() {
            return Ok(Delivery::Records(records));
        }
        if tokio::time::timeout(timeout, appended).await.is_ok() {
            return self.read_available(max_records).map(Delivery::Records);
        }
        Ok(Delivery::Records(Vec::new()))
    }

    async fn seek(&mut self, position: Position) -> Result<(), LogError> {
        let slot = self
            .next
            .get_mut(position.partition as usize)
            .ok_or_else(|| LogError::Invalid(format!("partition {} is not assigned", position.partition)))?;
        *slot = position.offset;
        Ok(())
    }

    async fn seek_to_end(&mut self, partition: u32) -> Result<(), LogError> {
        let end = self.next_offset(partition)?;
        self.seek(Position { partition, offset: end }).await
    }

    async fn end_offset(&mut self, partition: u32) -> Result<u64, LogError> {
        self.next_offset(partition)
    }

    fn known_end_offset(&self, partition: u32) -> Option<u64> {
        self.next_offset(partition).ok()
    }

    async fn committed(&mut self, partition: u32) -> Result<u64, LogError> {
        self.committed
            .get(partition as usize)
            .copied()
            .ok_or_else(|| LogError::Invalid(format!("partition {partition} is not assigned")))
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        for position in positions {
            let slot = self
                .committed
                .get_mut(position.partition as usize)
                .ok_or_else(|| LogError::Invalid(format!("partition {} is not assigned", position.partition)))?;
            *slot = position.offset;
        }
        let text: String =
            self.committed.iter().enumerate().map(|(partition, offset)| format!("{partition} {offset}\n")).collect();
        let temporary = self.offsets_path.with_extension("offsets.tmp");
        std::fs::write(&temporary, text).map_err(unavailable)?;
        std::fs::rename(&temporary, &self.offsets_path).map_err(unavailable)
    }
}
