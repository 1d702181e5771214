//! Writes the JSON Schema of every event payload into `schemas/json/`.

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    std::fs::create_dir_all(&dir)?;
    for (name, value) in avatar_schemas::json_schemas() {
        std::fs::write(dir.join(name), avatar_schemas::render_schema(&value))?;
        println!("wrote schemas/json/{name}");
    }
    Ok(())
}
