//! PEM parsing errors in words: rustls prints the markers it expected as byte lists
//! ("missing section end marker: [67, 69, 82, …]"), which tells a user nothing.

use rustls::pki_types::pem::Error;

/// What is wrong with a PEM file, in one phrase.
pub fn describe(error: &Error) -> String {
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "its \"-----END {}-----\" line is missing (is the file cut short?)",
            String::from_utf8_lossy(end_marker).trim()
        ),
        Error::IllegalSectionStart { line } => format!(
            "a \"-----BEGIN …-----\" line is malformed: \"{}\"",
            String::from_utf8_lossy(line).trim()
        ),
        Error::Base64Decode(e) => format!("a PEM block is not valid base64 ({e})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn a_truncated_pem_names_the_missing_end_line_in_text() {
        let truncated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let e = CertificateDer::pem_slice_iter(truncated)
            .next()
            .unwrap()
            .unwrap_err();
        let text = describe(&e);
        assert!(text.contains("-----END CERTIFICATE-----"), "{text}");
        assert!(!text.contains("[45, 45"), "{text}");
    }
}
