// The web apps are built by `npm run build` into web/dist and embedded by rust-embed; rebuild
// this crate when that folder changes (new hashed file names appear there).
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
