//! Build script: generates Tauri's context (config, capabilities, icons) for `generate_context!`.

fn main() {
    tauri_build::build();
}
