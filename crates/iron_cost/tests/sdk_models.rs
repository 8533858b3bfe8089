//! Every chat model named in the pinned SDKs' model lists is either priced by the catalog or
//! printed as unpriced. The test fails only on a matching bug: a model the data source prices
//! (per its own matcher, recorded by `scripts/update-prices.mjs` in `data/source-matches.json`)
//! that our catalog misses or prices as a different entry.

use iron_cost::Catalog;
use serde_json::Value;
use std::path::Path;

/// String literals of `export type <name> = 'a' | 'b' | ...;` in a TypeScript declaration file.
fn type_literals(text: &str, name: &str) -> Vec<String> {
    let head = format!("export type {name} =");
    let Some(start) = text.find(&head) else {
        return Vec::new();
    };
    let body = &text[start + head.len()..];
    let body = &body[..body.find(';').unwrap_or(body.len())];
    body.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn sdk_chat_models_are_priced_where_the_source_prices_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sdk_files = [
        (
            "openai",
            root.join("node_modules/openai/resources/shared.d.ts"),
            "ChatModel",
        ),
        (
            "anthropic",
            root.join("node_modules/@anthropic-ai/sdk/resources/messages/messages.d.ts"),
            "Model",
        ),
    ];
    let matches_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/source-matches.json"),
    )
    .expect("data/source-matches.json is committed with prices.json");
    let source: Value = serde_json::from_str(&matches_text).expect("source-matches.json parses");
    let source = source
        .get("matches")
        .and_then(Value::as_object)
        .expect("matches object");

    let catalog = Catalog::builtin();
    let (mut checked, mut missing, mut bugs) = (0, Vec::new(), Vec::new());
    for (sdk, path, type_name) in &sdk_files {
        let Ok(text) = std::fs::read_to_string(path) else {
            println!(
                "skipped {sdk}: {} not found (run npm ci at the repo root)",
                path.display()
            );
            continue;
        };
        let names = type_literals(&text, type_name);
        assert!(
            !names.is_empty(),
            "no literals found in {type_name} of {}",
            path.display()
        );
        for name in names {
            checked += 1;
            let ours = catalog.price(&name).map(|p| p.id.clone());
            let theirs = source.get(&name).map(|v| v.as_str().map(str::to_string));
            match (&ours, &theirs) {
                (None, Some(Some(id))) => bugs.push(format!(
                    "{name}: source prices it as {id}, catalog has nothing"
                )),
                (Some(o), Some(Some(t))) if o != t => {
                    bugs.push(format!("{name}: catalog says {o}, source says {t}"))
                }
                (None, None) => missing.push(format!(
                    "{name} (not in source-matches.json: rerun update-prices)"
                )),
                (None, Some(None)) => missing.push(name),
                _ => {}
            }
        }
    }
    println!(
        "checked {checked} SDK model names; unpriced by the data source too: {}",
        missing.len()
    );
    for m in &missing {
        println!("  unpriced: {m}");
    }
    assert!(
        bugs.is_empty(),
        "catalog matching bugs:\n{}",
        bugs.join("\n")
    );
}

#[test]
fn literal_extraction_reads_union_types() {
    let text = "export type Model = 'a-1' | 'b.2' | (string & {});\nexport type X = 'no';";
    assert_eq!(type_literals(text, "Model"), vec!["a-1", "b.2"]);
    assert!(type_literals(text, "Missing").is_empty());
}
