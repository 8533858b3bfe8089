//! The labelled corpus lines (positives `+ ` and look-alikes `- `) as plain text: the `[[ ]]`
//! value markers removed and `\n` unescaped. Shared by the streaming tests.

pub fn plain_lines() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let body = std::fs::read_to_string(entry.expect("entry").path()).expect("corpus file");
        for line in body.lines() {
            if let Some(l) = line.strip_prefix("+ ").or_else(|| line.strip_prefix("- ")) {
                out.push(l.replace("[[", "").replace("]]", "").replace("\\n", "\n"));
            }
        }
    }
    out
}
