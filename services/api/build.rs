//! Checks that the NOC screen's assets, which `src/page.rs` embeds, have been built.

fn main() {
    println!("cargo::rerun-if-changed=../web/dist");
    if !std::path::Path::new("../web/dist/index.html").exists() {
        panic!(
            "services/web/dist is not built: run `make web` (or `make tools`), which builds the NOC screen the binary embeds"
        );
    }
}
