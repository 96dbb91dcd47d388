//! Host services for node.js that run in Rust: hashing (`crypto.createHash`/`createHmac`),
//! UTF-8 encoding, randomness, and the file system over the directories the task was granted.
//! Work done here is not interpreted JavaScript, so it costs little of the task's fuel.

use hmac::{Hmac, Mac};
use rquickjs::{Ctx, Error, Exception, Function, Object, Result, TypedArray};
use sha2::Digest;

/// A copy of a `Uint8Array`'s bytes.
fn bytes(array: &TypedArray<'_, u8>) -> Vec<u8> {
    match array.as_raw() {
        // SAFETY: the pointer and length describe the array's live backing store, and no
        // JavaScript runs while it is copied.
        Some(raw) => unsafe { raw.as_ref() }.to_vec(),
        None => Vec::new(),
    }
}

fn digest(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match algorithm {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn hmac(algorithm: &str, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    Some(match algorithm {
        "md5" => run::<Hmac<md5::Md5>>(key, data),
        "sha1" => run::<Hmac<sha1::Sha1>>(key, data),
        "sha256" => run::<Hmac<sha2::Sha256>>(key, data),
        "sha384" => run::<Hmac<sha2::Sha384>>(key, data),
        "sha512" => run::<Hmac<sha2::Sha512>>(key, data),
        _ => return None,
    })
}

/// WASI's "not capable": outside every granted directory, or the grant is read-only.
const ENOTCAPABLE: i32 = 76;

/// Throws a Node-style file error: `code` (`ENOENT`, `EACCES`...), `syscall`, `path`.
fn fs_error(ctx: &Ctx<'_>, syscall: &str, path: &str, error: std::io::Error) -> Error {
    use std::io::ErrorKind;
    let refused =
        error.kind() == ErrorKind::PermissionDenied || error.raw_os_error() == Some(ENOTCAPABLE);
    let code = match error.kind() {
        _ if refused => "EACCES",
        ErrorKind::NotFound => "ENOENT",
        ErrorKind::AlreadyExists => "EEXIST",
        ErrorKind::NotADirectory => "ENOTDIR",
        ErrorKind::IsADirectory => "EISDIR",
        ErrorKind::DirectoryNotEmpty => "ENOTEMPTY",
        ErrorKind::ReadOnlyFilesystem => "EROFS",
        // Also a task's `disk` limit: the runner refuses the write with ENOSPC.
        ErrorKind::StorageFull => "ENOSPC",
        _ => "EIO",
    };
    // Node's wording: `ENOENT: no such file or directory, open 'x'`.
    let description = match code {
        "EACCES" => "permission denied (not granted to the task)",
        "ENOENT" => "no such file or directory",
        "EEXIST" => "file already exists",
        "ENOTDIR" => "not a directory",
        "EISDIR" => "illegal operation on a directory",
        "ENOTEMPTY" => "directory not empty",
        "EROFS" => "read-only file system",
        "ENOSPC" => "no space left on device",
        _ => "i/o error",
    };
    let message = format!("{code}: {description}, {syscall} '{path}'");
    let Ok(exception) = Exception::from_message(ctx.clone(), &message) else {
        return Exception::throw_message(ctx, &message);
    };
    let _ = exception.set("code", code);
    let _ = exception.set("syscall", syscall);
    let _ = exception.set("path", path);
    if refused {
        let _ = exception.set("name", "PermissionError");
    }
    ctx.throw(exception.into_value())
}

/// Adds the native services to the host object.
pub fn install<'js>(ctx: &Ctx<'js>, host: &Object<'js>) -> Result<()> {
    host.set(
        "hash",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, algorithm: String, data: TypedArray<'js, u8>| {
                match digest(&algorithm.to_ascii_lowercase().replace('-', ""), &bytes(&data)) {
                    Some(out) => TypedArray::<u8>::new(ctx, out),
                    None => Err(Exception::throw_message(
                        &ctx,
                        &format!("Digest method not supported: {algorithm}"),
                    )),
                }
            },
        )?,
    )?;
    host.set(
        "hmac",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             algorithm: String,
             key: TypedArray<'js, u8>,
             data: TypedArray<'js, u8>| {
                match hmac(
                    &algorithm.to_ascii_lowercase().replace('-', ""),
                    &bytes(&key),
                    &bytes(&data),
                ) {
                    Some(out) => TypedArray::<u8>::new(ctx, out),
                    None => Err(Exception::throw_message(
                        &ctx,
                        &format!("Invalid digest: {algorithm}"),
                    )),
                }
            },
        )?,
    )?;
    host.set(
        "utf8Encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String| {
            TypedArray::<u8>::new(ctx, text.into_bytes())
        })?,
    )?;
    host.set(
        "utf8Decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, data: TypedArray<'js, u8>, fatal: rquickjs::function::Opt<bool>| {
                let data = bytes(&data);
                match String::from_utf8(data) {
                    Ok(text) => Ok(text),
                    Err(_) if fatal.0 == Some(true) => {
                        let error = Exception::from_message(
                            ctx.clone(),
                            "The encoded data was not valid for encoding utf-8",
                        )?;
                        error.set("name", "TypeError")?;
                        error.set("code", "ERR_ENCODING_INVALID_ENCODED_DATA")?;
                        Err(ctx.throw(error.into_value()))
                    }
                    Err(e) => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                }
            },
        )?,
    )?;
    host.set(
        "randomBytes",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, len: usize| {
            let mut out = Vec::with_capacity(len);
            while out.len() < len {
                for word in crate::random_words() {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
            out.truncate(len);
            TypedArray::<u8>::new(ctx, out)
        })?,
    )?;
    host.set(
        "readFile",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, path: String| {
            let data = std::fs::read(&path).map_err(|e| fs_error(&ctx, "open", &path, e))?;
            TypedArray::<u8>::new(ctx, data)
        })?,
    )?;
    host.set(
        "writeFile",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, data: TypedArray<'js, u8>, append: bool| {
                use std::io::Write;
                let data = bytes(&data);
                let result = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(&path)
                    .and_then(|mut file| file.write_all(&data));
                result.map_err(|e| fs_error(&ctx, "open", &path, e))
            },
        )?,
    )?;
    host.set(
        "stat",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, path: String| -> Result<Object<'js>> {
            let meta = std::fs::metadata(&path).map_err(|e| fs_error(&ctx, "stat", &path, e))?;
            let stat = Object::new(ctx)?;
            stat.set("size", meta.len() as f64)?;
            stat.set("isFile", meta.is_file())?;
            stat.set("isDirectory", meta.is_dir())?;
            let ms = |t: std::io::Result<std::time::SystemTime>| {
                t.ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            };
            stat.set("mtimeMs", ms(meta.modified()))?;
            stat.set("atimeMs", ms(meta.accessed()))?;
            stat.set("birthtimeMs", ms(meta.created()))?;
            Ok(stat)
        })?,
    )?;
    host.set(
        "exists",
        Function::new(ctx.clone(), |path: String| std::fs::metadata(path).is_ok())?,
    )?;
    host.set(
        "mkdir",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, path: String, recursive: bool| {
            let result = if recursive {
                std::fs::create_dir_all(&path)
            } else {
                std::fs::create_dir(&path)
            };
            result.map_err(|e| fs_error(&ctx, "mkdir", &path, e))
        })?,
    )?;
    host.set(
        "rm",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, recursive: bool, force: bool| {
                let result = match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() && recursive => std::fs::remove_dir_all(&path),
                    Ok(meta) if meta.is_dir() => std::fs::remove_dir(&path),
                    Ok(_) => std::fs::remove_file(&path),
                    Err(e) if force && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                };
                result.map_err(|e| fs_error(&ctx, "rm", &path, e))
            },
        )?,
    )?;
    host.set(
        "rename",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, from: String, to: String| {
            std::fs::rename(&from, &to).map_err(|e| fs_error(&ctx, "rename", &from, e))
        })?,
    )?;
    host.set(
        "cwd",
        Function::new(ctx.clone(), || {
            std::env::current_dir()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/".to_string())
        })?,
    )?;
    Ok(())
}
