// `sqlx::migrate!` embeds the files under `migrations/` at compile time, but
// on stable Rust cargo does not know to rebuild when one is added: without
// this a new migration was silently left out of an incremental build (what
// `sqlx migrate build-script` generates).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
