// The schema is embedded with `sqlx::migrate!`, which cannot tell cargo to watch its directory:
// a new or changed migration must rebuild the crate (sqlx's documented build-script line).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
