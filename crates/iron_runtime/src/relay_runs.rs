//! Text events of one stream that arrived together, filtered as one piece (see
//! `SseOutputFilter::on_text_run`): one scan and one redactor step for a burst instead of one per
//! event, with what is released handed back event by event.

use crate::relay_sse::{emit, SideParser, SseStop};
use crate::sse::write_event;
use bytes::{Bytes, BytesMut};
use iron_safety::RunOutcome;

/// Longest run of text events filtered as one piece.
pub(crate) const MAX_RUN: usize = 256;

/// Text events waiting to be filtered together: the raw event and where its data is in it.
#[derive(Default)]
pub(crate) struct TextRun {
    pub(crate) key: Option<(u64, u64)>,
    pub(crate) event: Option<String>,
    pub(crate) items: Vec<(Bytes, std::ops::Range<usize>)>,
    pub(crate) bytes: usize,
}

/// Where `part` (borrowed from `whole`) starts in it.
pub(crate) fn offset_in(whole: &[u8], part: &str) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at + part.len() <= whole.len()).then_some(at)
}

/// [`flush_run`], a block turned into the stop `process_sse` returns (with what was ready before it).
pub(crate) fn flush_or_stop(
    p: &mut SideParser,
    out: &mut BytesMut,
    run: &mut TextRun,
) -> Result<(), (Bytes, SseStop)> {
    flush_run(p, out, run).map_err(|m| (out.split().freeze(), SseStop::Blocked(m)))
}

/// Filters the waiting text events as one piece and appends what to send for each; a block is an
/// error (nothing of the run is sent).
fn flush_run(p: &mut SideParser, out: &mut BytesMut, run: &mut TextRun) -> Result<(), String> {
    let Some(key) = run.key.take() else {
        return Ok(());
    };
    let event = run.event.take();
    let items = std::mem::take(&mut run.items);
    run.bytes = 0;
    // The data of each event, as text (it was read as such when the event joined the run).
    let datas: Vec<&str> = items
        .iter()
        .map(|(raw, at)| std::str::from_utf8(&raw[at.clone()]).unwrap_or(""))
        .collect();
    let Some(filter) = p.filter.as_mut() else {
        items.iter().for_each(|(raw, _)| out.extend_from_slice(raw));
        return Ok(());
    };
    // Each text, read in place; the template has not changed since these events matched it, and
    // anything else fails closed.
    let texts: Option<Vec<&str>> = datas
        .iter()
        .map(|d| p.template.read(event.as_deref(), d)?.text_in_place())
        .collect();
    let Some(texts) = texts else {
        return Err("Response stopped by Iron Cage: the PII filter lost track of a run of streamed text events, so it failed closed rather than risk leaking unredacted text.".into());
    };
    let Some(outcome) = filter.on_text_run(key, &texts) else {
        // Event by event (a private key is being dropped).
        for ((raw, _), data) in items.iter().zip(&datas) {
            let outcome = match p.template.read(event.as_deref(), data) {
                Some(d) => filter.on_text_delta(&d, event.as_deref(), data),
                None => filter.on_event(event.as_deref(), data),
            };
            emit(out, raw, outcome)?;
        }
        return Ok(());
    };
    match outcome {
        RunOutcome::Block { message } => Err(message),
        RunOutcome::Texts(per_event) => {
            for (((raw, _), (old, data)), text) in
                items.iter().zip(texts.iter().zip(&datas)).zip(per_event)
            {
                match text {
                    None => out.extend_from_slice(raw),
                    Some(t) => match iron_safety::splice_text(data, old, &t) {
                        Some(rewritten) => write_event(out, event.as_deref(), &rewritten),
                        None => return Err("Response stopped by Iron Cage: the PII filter could not rewrite a streamed text event, so it failed closed rather than risk leaking unredacted text.".into()),
                    },
                }
            }
            Ok(())
        }
    }
}
