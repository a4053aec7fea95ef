//! Lets this crate's tests find libtorch without LD_LIBRARY_PATH: torch-sys (`links =
//! "tch"`) tells dependents where libtorch's libraries are (see processors/sentiment).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
