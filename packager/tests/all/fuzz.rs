//! A bounded mutation fuzzer for the bundle reader: random damage to valid bundles (compressed
//! bytes, and the tar inside them) must give a clean error or an intact bundle, never a panic or a
//! bundle whose blobs differ from its manifest. `CAPSULE_FUZZ_SECS` sets the time (default 10 s).

use crate::support::sample_bundle;
use capsule_packager::Digest;
use capsule_packager::archive::{BundleReader, ReadLimits};
use capsule_packager::sign::SecretKey;
use std::time::{Duration, Instant};

/// xorshift64*: deterministic per seed, so a failure can be replayed from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len());
        match rng.below(6) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = rng.next() as u8,
            2 => data.truncate(at),
            3 => {
                let extra: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                data.splice(at..at, extra);
            }
            4 => {
                let end = (at + rng.below(512)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, copy);
            }
            _ => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
        }
        if data.is_empty() {
            return;
        }
    }
}

#[test]
fn fuzz_the_bundle_reader() {
    let seconds: u64 = std::env::var("CAPSULE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let key = SecretKey::generate().expect("key");
    let compressed = sample_bundle(Some(&key));
    let tar = zstd::decode_all(&compressed[..]).expect("decompress");
    let reader = BundleReader::new(ReadLimits::default());
    let seed = std::env::var("CAPSULE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut iterations, mut accepted) = (0u64, 0u64);
    while Instant::now() < deadline {
        iterations += 1;
        // Half the cases damage the tar and recompress it, so they reach the archive parser.
        let input = if rng.below(2) == 0 {
            let mut data = compressed.clone();
            mutate(&mut rng, &mut data);
            data
        } else {
            let mut data = tar.clone();
            mutate(&mut rng, &mut data);
            zstd::encode_all(&data[..], 1).expect("compress")
        };
        // The runner's first path: frames located, blobs hashed on use.
        if let Ok(Some(framed)) = reader.index(&input) {
            for blob in &framed.manifest.blobs {
                if let Ok(bytes) = framed.verified_blob(&blob.digest) {
                    assert_eq!(
                        Digest::of(&bytes),
                        blob.digest,
                        "iteration {iterations}, seed {seed}: an indexed blob does not match"
                    );
                }
            }
        }
        if let Ok(bundle) = reader.read_bytes(&input) {
            accepted += 1;
            for blob in &bundle.manifest.blobs {
                let bytes = bundle.blob(&blob.digest).expect("listed blob present");
                assert_eq!(
                    Digest::of(bytes),
                    blob.digest,
                    "iteration {iterations}, seed {seed}: a blob does not match"
                );
            }
        }
    }
    println!(
        "fuzz: {iterations} inputs in {seconds} s, {accepted} accepted as intact, no panics (seed {seed})"
    );
    assert!(
        iterations > 100,
        "the fuzzer barely ran: {iterations} inputs"
    );
}
