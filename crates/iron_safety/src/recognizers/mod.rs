//! One recognizer per file, all behind [`crate::Recognizer`].

mod credit_card;
mod custom;
mod email;
mod iban;
mod ip_address;
mod phone;
mod secret;
mod us_ssn;

pub use credit_card::CreditCardRecognizer;
pub use custom::CustomRecognizer;
pub(crate) use email::is_address_letter;
pub use email::EmailRecognizer;
pub use iban::IbanRecognizer;
pub use ip_address::IpAddressRecognizer;
pub use phone::PhoneRecognizer;
pub use secret::{SecretRecognizer, PEM_MAX_BYTES};
pub use us_ssn::UsSsnRecognizer;

use crate::kind::PiiKind;
use crate::recognizer::Recognizer;

/// The built-in recognizer for `kind`, or `None` for custom kinds.
pub fn built_in(kind: &PiiKind) -> Option<Box<dyn Recognizer>> {
    Some(match kind {
        PiiKind::Email => Box::new(EmailRecognizer),
        PiiKind::Phone => Box::new(PhoneRecognizer),
        PiiKind::CreditCard => Box::new(CreditCardRecognizer),
        PiiKind::UsSsn => Box::new(UsSsnRecognizer),
        PiiKind::Iban => Box::new(IbanRecognizer),
        PiiKind::IpAddress => Box::new(IpAddressRecognizer),
        PiiKind::Secret => Box::new(SecretRecognizer),
        PiiKind::Custom(_) => return None,
    })
}

/// The values a scanner of `kinds` finds in `text` (for the recognizers' tests).
#[cfg(test)]
pub(crate) fn found<'t>(kinds: &[PiiKind], text: &'t str) -> Vec<&'t str> {
    let scanner = crate::Scanner::new(kinds, &[]).expect("scanner");
    scanner
        .scan(text)
        .into_iter()
        .map(|f| &text[f.span])
        .collect()
}
