//! Base64 as the readers of the texts the scanner sees take it (inline files, JWT segments).

/// Base64 as a lenient reader takes it: line breaks and spaces ignored, the standard or the
/// URL-safe alphabet, padding or none.
pub(crate) fn lenient_base64(data: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let clean: String = data
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(clean)
        .ok()
}
