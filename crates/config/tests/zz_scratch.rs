use fulcrum_config::*;
use std::path::PathBuf;
#[test]
fn show() {
    let files: Vec<PathBuf> = std::env::var("SHOW").unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    let opts = LoadOptions { lenient: std::env::var("LENIENT").is_ok(), ..Default::default() };
    match load_files(&files, &opts) {
        Ok(l) => { for w in &l.warnings { println!("{w}"); } println!("OK {:#?}", if std::env::var("MODEL").is_ok() { format!("{:#?}", l.model) } else { String::new() }); }
        Err(e) => { for d in &e { println!("{d}"); } println!("ERR"); }
    }
}
