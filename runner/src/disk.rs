//! The `disk` limit: how many bytes a task may add to its writable directories, all together.
//!
//! wasmtime-wasi does the guest's file I/O; [`add_to_linker`] links a counting layer over its
//! `wasi:filesystem/types` (the guest sees the same interface). What is counted is the net
//! growth of file contents: a write past a file's end and a `set-size` that enlarges charge the
//! bytes added; a truncation, a rename over a file and unlinking a file's last link give them
//! back. Directory entries, links and metadata are not counted. A write that would take the total
//! past the limit is refused whole with ENOSPC (`insufficient-space`), nothing of it written.
//!
//! One [`DiskBudget`] covers every attempt of a call (what a failed attempt left behind still
//! counts) and is charged for the sub-tasks the call makes as well (each also has its own).
//! Without a limit anywhere in the chain the layer only delegates: no `stat` calls, no wrapping.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, DescriptorStat, DescriptorType, ErrorCode, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::{
    DynOutputStream, FsError, FsResult, OutputStream, Pollable, StreamError, StreamResult,
};

/// Linux's ENOSPC (the runner's targets are Linux): wasmtime-wasi turns a stream's I/O error
/// into the guest's error code by its raw OS error.
const ENOSPC: i32 = 28;

/// The bytes a call may still add: its own limit and those of every caller above it.
#[derive(Clone, Default)]
pub struct DiskBudget(Option<Arc<Level>>);

struct Level {
    limit: Option<u64>,
    /// Net bytes added under this level (negative when more was removed than added).
    added: AtomicI64,
    /// Writes refused at this level or, for its sub-tasks, above it.
    refusals: AtomicU64,
    /// The last refusal: (the limit it hit, the bytes the write would have added).
    last_refusal: Mutex<Option<(u64, u64)>>,
    caller: DiskBudget,
}

/// Bytes the files at `path` hold, as a `disk` budget counts them: a file's size, a directory's
/// files in all; symbolic links (not followed) and what cannot be read count for nothing.
pub fn bytes_under(path: &std::path::Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(meta) if meta.is_dir() => std::fs::read_dir(path).map_or(0, |entries| {
            entries
                .flatten()
                .map(|entry| bytes_under(&entry.path()))
                .sum()
        }),
        _ => 0,
    }
}

/// A refused write ([`DiskBudget::last_refusal`] says which limit it hit).
#[derive(Clone, Copy, Debug)]
pub struct DiskFull;

impl DiskBudget {
    /// A budget of `limit` bytes (`None`: no own limit) inside the caller's `caller`.
    pub fn new(limit: Option<u64>, caller: &DiskBudget) -> DiskBudget {
        if limit.is_none() && caller.0.is_none() {
            return DiskBudget(None);
        }
        DiskBudget(Some(Arc::new(Level {
            limit,
            added: AtomicI64::new(0),
            refusals: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
            caller: caller.clone(),
        })))
    }

    /// Counts `bytes` as already written, without a check: the files a session's workspace
    /// holds when its instance (re)starts. Later writes fit in what is left, and deleting those
    /// files gives their bytes back.
    pub fn count_existing(&self, bytes: u64) {
        let delta = i64::try_from(bytes).unwrap_or(i64::MAX);
        for level in self.levels() {
            level.added.fetch_add(delta, Ordering::SeqCst);
        }
    }

    /// Whether writes need counting at all.
    pub fn is_limited(&self) -> bool {
        self.0.is_some()
    }

    fn levels(&self) -> impl Iterator<Item = &Level> {
        std::iter::successors(self.0.as_deref(), |level| level.caller.0.as_deref())
    }

    /// Takes `bytes` from this budget and every caller's, or from none of them.
    pub fn charge(&self, bytes: u64) -> Result<(), DiskFull> {
        if bytes == 0 {
            return Ok(());
        }
        let delta = i64::try_from(bytes).unwrap_or(i64::MAX);
        for (taken, level) in self.levels().enumerate() {
            let after = level
                .added
                .fetch_add(delta, Ordering::SeqCst)
                .saturating_add(delta);
            if let Some(limit) = level.limit
                && after > i64::try_from(limit).unwrap_or(i64::MAX)
            {
                for undo in self.levels().take(taken + 1) {
                    undo.added.fetch_sub(delta, Ordering::SeqCst);
                }
                if let Some(own) = self.0.as_deref() {
                    own.refusals.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut last) = own.last_refusal.lock() {
                        *last = Some((limit, bytes));
                    }
                }
                return Err(DiskFull);
            }
        }
        Ok(())
    }

    /// Gives back `bytes` removed (a truncation, a deleted file).
    pub fn credit(&self, bytes: u64) {
        let delta = i64::try_from(bytes).unwrap_or(i64::MAX);
        for level in self.levels() {
            level.added.fetch_sub(delta, Ordering::SeqCst);
        }
    }

    /// Writes refused so far (to compare before and after an attempt).
    pub fn refusals(&self) -> u64 {
        self.0
            .as_deref()
            .map_or(0, |own| own.refusals.load(Ordering::SeqCst))
    }

    /// The last refused write: the limit it hit and the bytes it would have added.
    pub fn last_refusal(&self) -> Option<(u64, u64)> {
        let own = self.0.as_deref()?;
        own.last_refusal.lock().ok().and_then(|last| *last)
    }
}

/// `wasi:filesystem/types` for one store: wasmtime-wasi's, with writes charged to `budget`.
pub struct DiskView<'a> {
    pub fs: WasiFilesystemCtxView<'a>,
    pub budget: &'a DiskBudget,
}

/// [`HasData`] for [`DiskView`].
pub struct CountedFilesystem;

impl HasData for CountedFilesystem {
    type Data<'a> = DiskView<'a>;
}

/// Links `wasi:filesystem/types` with writes counted against the call's `disk` budget.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> DiskView<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, CountedFilesystem>(linker, view)
}

fn no_space() -> FsError {
    ErrorCode::InsufficientSpace.into()
}

fn size_of(file: &std::fs::File) -> std::io::Result<u64> {
    file.metadata().map(|m| m.len())
}

/// A second handle on a borrowed descriptor (the host functions take theirs by value).
fn again(fd: &Resource<types::Descriptor>) -> Resource<types::Descriptor> {
    Resource::new_borrow(fd.rep())
}

impl DiskView<'_> {
    /// The open file behind `fd` when writes through it are counted (a writable file).
    fn counted_file(&self, fd: &Resource<types::Descriptor>) -> Option<Arc<std::fs::File>> {
        if !self.budget.is_limited() {
            return None;
        }
        match self.fs.table.get(fd) {
            Ok(Descriptor::File(f)) if !f.perms.write_not_permitted() => Some(f.file.clone()),
            _ => None,
        }
    }

    /// The size of the regular file at `path` whose contents go away with this last link.
    async fn sole_file_size(&mut self, dir: &Resource<types::Descriptor>, path: &str) -> u64 {
        match HostDescriptor::stat_at(
            &mut self.fs,
            again(dir),
            types::PathFlags::empty(),
            path.to_string(),
        )
        .await
        {
            Ok(DescriptorStat {
                type_: DescriptorType::RegularFile,
                link_count: 1,
                size,
                ..
            }) => size,
            _ => 0,
        }
    }
}

impl types::Host for DiskView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.fs, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.fs, err)
    }
}

impl HostDescriptor for DiskView<'_> {
    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        let Some(file) = self.counted_file(&fd) else {
            return HostDescriptor::write(&mut self.fs, fd, buf, offset).await;
        };
        let size = size_of(&file).map_err(ErrorCode::from)?;
        let growth = (offset.saturating_add(buf.len() as u64)).saturating_sub(size);
        self.budget.charge(growth).map_err(|_| no_space())?;
        let written = HostDescriptor::write(&mut self.fs, fd, buf, offset).await;
        // Give back what was charged and not written.
        let added = match &written {
            Ok(n) => offset.saturating_add(*n).saturating_sub(size),
            Err(_) => 0,
        };
        self.budget.credit(growth.saturating_sub(added));
        written
    }

    async fn set_size(
        &mut self,
        fd: Resource<types::Descriptor>,
        size: types::Filesize,
    ) -> FsResult<()> {
        let Some(file) = self.counted_file(&fd) else {
            return HostDescriptor::set_size(&mut self.fs, fd, size).await;
        };
        let old = size_of(&file).map_err(ErrorCode::from)?;
        if size > old {
            self.budget.charge(size - old).map_err(|_| no_space())?;
        }
        let result = HostDescriptor::set_size(&mut self.fs, fd, size).await;
        match (&result, size > old) {
            (Ok(()), false) => self.budget.credit(old - size),
            (Err(_), true) => self.budget.credit(size - old),
            _ => {}
        }
        result
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let file = self.counted_file(&fd);
        let stream = HostDescriptor::write_via_stream(&mut self.fs, fd, offset)?;
        match file {
            Some(file) => self.counted(stream, file, Some(offset)),
            None => Ok(stream),
        }
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let file = self.counted_file(&fd);
        let stream = HostDescriptor::append_via_stream(&mut self.fs, fd)?;
        match file {
            Some(file) => self.counted(stream, file, None),
            None => Ok(stream),
        }
    }

    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        // Opening with `truncate` empties an existing file.
        let truncated = if self.budget.is_limited() && oflags.contains(types::OpenFlags::TRUNCATE) {
            self.sole_file_size(&fd, &path).await
        } else {
            0
        };
        let opened =
            HostDescriptor::open_at(&mut self.fs, fd, path_flags, path, oflags, flags).await?;
        self.budget.credit(truncated);
        Ok(opened)
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let removed = if self.budget.is_limited() {
            self.sole_file_size(&fd, &path).await
        } else {
            0
        };
        HostDescriptor::unlink_file_at(&mut self.fs, fd, path).await?;
        self.budget.credit(removed);
        Ok(())
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        // A rename over another file removes that file's contents (not when both name one file).
        let mut replaced = 0;
        if self.budget.is_limited() {
            let empty = types::PathFlags::empty();
            let source =
                HostDescriptor::metadata_hash_at(&mut self.fs, again(&fd), empty, old_path.clone())
                    .await;
            let target = HostDescriptor::metadata_hash_at(
                &mut self.fs,
                again(&new_fd),
                empty,
                new_path.clone(),
            )
            .await;
            let same = matches!((&source, &target), (Ok(a), Ok(b)) if a.lower == b.lower && a.upper == b.upper);
            if target.is_ok() && !same {
                replaced = self.sole_file_size(&new_fd, &new_path).await;
            }
        }
        HostDescriptor::rename_at(&mut self.fs, fd, old_path, new_fd, new_path).await?;
        self.budget.credit(replaced);
        Ok(())
    }

    // Everything else is wasmtime-wasi's, unchanged.

    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.fs, fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.fs, fd).await
    }

    async fn get_flags(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.fs, fd).await
    }

    async fn get_type(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorType> {
        HostDescriptor::get_type(&mut self.fs, fd).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times(&mut self.fs, fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.fs, fd, len, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        HostDescriptor::read_directory(&mut self.fs, fd).await
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.fs, fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        HostDescriptor::create_directory_at(&mut self.fs, fd, path).await
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<DescriptorStat> {
        HostDescriptor::stat(&mut self.fs, fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        HostDescriptor::stat_at(&mut self.fs, fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times_at(&mut self.fs, fd, path_flags, path, atim, mtim).await
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        HostDescriptor::link_at(
            &mut self.fs,
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
        .await
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.fs, fd)
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        HostDescriptor::readlink_at(&mut self.fs, fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        HostDescriptor::remove_directory_at(&mut self.fs, fd, path).await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        HostDescriptor::symlink_at(&mut self.fs, fd, src_path, dest_path).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<wasmtime_wasi::p2::DynInputStream>> {
        HostDescriptor::read_via_stream(&mut self.fs, fd, offset)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.fs, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.fs, fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash_at(&mut self.fs, fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for DiskView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        HostDirectoryEntryStream::read_directory_entry(&mut self.fs, stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.fs, stream)
    }
}

impl DiskView<'_> {
    /// Replaces the stream wasmtime-wasi made with one that charges its writes first.
    fn counted(
        &mut self,
        stream: Resource<DynOutputStream>,
        file: Arc<std::fs::File>,
        position: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let inner = self.fs.table.delete(stream)?;
        let counted: DynOutputStream = Box::new(CountedOutput {
            inner,
            file,
            position,
            budget: self.budget.clone(),
        });
        Ok(self.fs.table.push(counted)?)
    }
}

/// A file's output stream whose writes are charged to a budget before they are passed on.
struct CountedOutput {
    inner: DynOutputStream,
    file: Arc<std::fs::File>,
    /// Where the next write lands; `None` for an appending stream (every byte is growth).
    position: Option<u64>,
    budget: DiskBudget,
}

impl CountedOutput {
    /// Charges a write of `len` bytes; returns what was charged.
    fn charge(&self, len: usize) -> StreamResult<u64> {
        let len = len as u64;
        let growth = match self.position {
            None => len,
            Some(at) => {
                let size =
                    size_of(&self.file).map_err(|e| StreamError::LastOperationFailed(e.into()))?;
                at.saturating_add(len).saturating_sub(size)
            }
        };
        self.budget.charge(growth).map_err(|_| {
            StreamError::LastOperationFailed(std::io::Error::from_raw_os_error(ENOSPC).into())
        })?;
        Ok(growth)
    }

    /// Accounts for a write the inner stream took (`Ok`) or refused (charge given back).
    fn settle<T>(&mut self, len: usize, charged: u64, result: StreamResult<T>) -> StreamResult<T> {
        match &result {
            Ok(_) => {
                if let Some(at) = &mut self.position {
                    *at = at.saturating_add(len as u64);
                }
            }
            Err(_) => self.budget.credit(charged),
        }
        result
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CountedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let len = bytes.len();
        let charged = self.charge(len)?;
        let result = self.inner.write(bytes);
        self.settle(len, charged, result)
    }

    async fn blocking_write_and_flush(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let len = bytes.len();
        let charged = self.charge(len)?;
        let result = self.inner.blocking_write_and_flush(bytes).await;
        self.settle(len, charged, result)
    }

    fn write_zeroes(&mut self, len: usize) -> StreamResult<()> {
        let charged = self.charge(len)?;
        let result = self.inner.write_zeroes(len);
        self.settle(len, charged, result)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CountedOutput {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_past_any_level_is_refused_and_taken_from_none() {
        let caller = DiskBudget::new(Some(100), &DiskBudget::default());
        let callee = DiskBudget::new(Some(80), &caller);
        caller.charge(30).expect("within the caller's limit");
        // 75 fits the callee's 80 but not the 70 the caller has left.
        callee.charge(75).expect_err("past the caller's limit");
        assert_eq!(callee.refusals(), 1);
        assert_eq!(callee.last_refusal(), Some((100, 75)));
        callee.charge(70).expect("exactly what the caller has left");
        caller.charge(1).expect_err("the caller is full");
        callee.credit(70);
        caller.charge(70).expect("given back");
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let free = DiskBudget::new(None, &DiskBudget::default());
        assert!(!free.is_limited());
        free.charge(u64::MAX).expect("no limit");
        let inner = DiskBudget::new(None, &DiskBudget::new(Some(0), &DiskBudget::default()));
        assert!(
            inner.is_limited(),
            "a caller's limit applies to its sub-tasks"
        );
        inner.charge(1).expect_err("the caller allows no growth");
    }
}
