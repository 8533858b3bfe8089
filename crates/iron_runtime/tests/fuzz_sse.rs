//! Property tests (fuzzing) of the SSE splitter and event parser on what a provider may send:
//! arbitrary bytes cut arbitrarily never panic, and the events found do not depend on the chunking.
//! `PROPTEST_CASES` raises the case count (scripts/fuzz-long.sh).

mod fuzz_config;

use fuzz_config::config;
use iron_runtime::sse::{parse_event, SseSplitter};
use proptest::prelude::*;

/// Bytes that look like an SSE stream often: field names, line ends, JSON, invalid UTF-8.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            &b"data: "[..], b"data:", b"event: ", b"event:message_start", b": ping",
            b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"\r", b"\n\r\n",
            b"{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}", b"[DONE]", b"{", b"}",
            b"\xff\xfe", b"\xe2\x82", b"\xc3\xa9", b"id: 1", b"retry: 5",
        ]).prop_map(|b| b.to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop_oneof![
        3 => prop::collection::vec(piece, 0..40).prop_map(|v| v.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..400),
    ]
}

/// Cut `bytes` at the given fractions.
fn chunks(bytes: &[u8], cuts: &[u16]) -> Vec<Vec<u8>> {
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|c| (*c as usize * bytes.len()) / (u16::MAX as usize + 1))
        .collect();
    bounds.push(0);
    bounds.push(bytes.len());
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

/// Feed the chunks, draining events after each; returns the events and the unfinished rest.
fn split(pieces: &[Vec<u8>], max_event: usize) -> Result<(Vec<Vec<u8>>, Vec<u8>), usize> {
    let mut s = SseSplitter::new(max_event);
    let mut events = Vec::new();
    for p in pieces {
        s.push(p);
        loop {
            match s.next_event() {
                Ok(Some(e)) => events.push(e.to_vec()),
                Ok(None) => break,
                Err(too_large) => return Err(too_large.0),
            }
        }
    }
    Ok((events, s.take_rest().to_vec()))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn events_do_not_depend_on_chunking(
        bytes in stream_bytes(),
        cuts in prop::collection::vec(any::<u16>(), 0..30),
    ) {
        let whole = split(std::slice::from_ref(&bytes), usize::MAX).expect("no limit");
        let pieces = chunks(&bytes, &cuts);
        let cut = split(&pieces, usize::MAX).expect("no limit");
        prop_assert_eq!(&cut, &whole);
        // Nothing is lost or duplicated: events then rest give back the input.
        let mut joined: Vec<u8> = whole.0.concat();
        joined.extend_from_slice(&whole.1);
        prop_assert_eq!(joined, bytes);
        for e in &whole.0 {
            prop_assert!(e.ends_with(b"\n\n") || e.ends_with(b"\n\r\n"));
        }
    }

    #[test]
    fn byte_by_byte_equals_whole(bytes in stream_bytes()) {
        let singles: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
        prop_assert_eq!(split(&singles, usize::MAX), split(&[bytes], usize::MAX));
    }

    #[test]
    fn the_unfinished_event_never_grows_past_the_limit(
        bytes in stream_bytes(),
        cuts in prop::collection::vec(any::<u16>(), 0..30),
        limit in 1usize..64,
    ) {
        let pieces = chunks(&bytes, &cuts);
        let longest_piece = pieces.iter().map(Vec::len).max().unwrap_or(0);
        match split(&pieces, limit) {
            // Refused as soon as the held bytes pass the limit: at most one chunk over it.
            Err(held) => prop_assert!(held > limit && held <= limit + longest_piece),
            Ok((_, rest)) => prop_assert!(rest.len() <= limit),
        }
    }

    #[test]
    fn parsing_any_event_never_panics_and_data_comes_from_data_lines(raw in stream_bytes()) {
        let p = parse_event(&raw);
        let has_data_line = raw
            .split(|b| *b == b'\n')
            .any(|l| l.starts_with(b"data:") && std::str::from_utf8(l).is_ok());
        if !has_data_line {
            prop_assert_eq!(p.data.as_ref(), "");
        }
        if let Some(name) = p.event {
            prop_assert!(!name.contains('\n'));
        }
    }
}

/// Inputs the properties above once failed on (none yet for the splitter): a CRLF blank line split
/// between its bytes, and invalid UTF-8 inside a data line, which the parser skips.
#[test]
fn split_crlf_terminator_and_invalid_utf8_line() {
    let bytes = b"data: a\r\n\r\ndata: \xff\ndata: b\n\n".to_vec();
    for cut in 1..bytes.len() {
        let pieces = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
        let (events, rest) = split(&pieces, 1024).expect("small");
        assert_eq!(events.len(), 2, "cut at {cut}");
        assert!(rest.is_empty());
        assert_eq!(parse_event(&events[0]).data, "a");
        assert_eq!(parse_event(&events[1]).data, "b");
    }
}
