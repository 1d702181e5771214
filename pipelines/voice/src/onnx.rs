//! ONNX Runtime for the models that ship as ONNX (Piper voices, DNSMOS): loaded once per
//! process from the library of the `onnxruntime` wheel (`infra/fetch-models.sh onnxruntime`),
//! so the build downloads nothing and links nothing.

use std::path::Path;
use std::sync::OnceLock;

/// Where `infra/fetch-models.sh onnxruntime` puts the runtime library, under the models folder.
pub const RUNTIME_LIB: &str = "onnxruntime/libonnxruntime.so";

/// The process's ONNX Runtime environment, loaded from `lib` on first use (later calls get
/// the same one, whatever `lib` they name). Err is why it could not be loaded.
pub fn runtime(lib: &Path) -> Result<&'static ort::environment::Environment, String> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        if !lib.is_file() {
            return Err(format!(
                "{} is missing (infra/fetch-models.sh onnxruntime)",
                lib.display()
            ));
        }
        ort::init_from(lib)
            .map_err(|e| e.to_string())?
            .with_name("avatar")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}
