//! What the terminal can show: the few non-ASCII glyphs of the reports (`→`, `µs`, `…`) in
//! ASCII where the locale is not UTF-8, and colour only where `NO_COLOR` is not set
//! (<https://no-color.org>).

use std::borrow::Cow;
use std::sync::OnceLock;

/// The reports' non-ASCII glyphs and what stands for each outside a UTF-8 locale.
const ASCII_STAND_INS: [(&str, &str); 7] = [
    ("→", "->"),
    ("←", "<-"),
    ("µs", "us"),
    ("…", "..."),
    ("–", "-"),
    ("×", "x"),
    ("±", "+/-"),
];

/// Whether the locale takes UTF-8: the first of `LC_ALL`, `LC_CTYPE` and `LANG` that is set
/// decides, as POSIX has it (`C.UTF-8`, `en_US.utf8` do; `C`, `POSIX`, `de_DE.ISO-8859-1` do
/// not); none set is the C locale, which does not. `var` reads a variable.
pub fn is_utf8_locale(var: impl Fn(&str) -> Option<String>) -> bool {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .filter_map(var)
        .find(|value| !value.is_empty())
        .unwrap_or_default()
        .to_ascii_lowercase();
    locale.contains("utf-8") || locale.contains("utf8")
}

/// This process's locale takes UTF-8 (read once).
fn utf8() -> bool {
    static UTF8: OnceLock<bool> = OnceLock::new();
    *UTF8.get_or_init(|| is_utf8_locale(|name| std::env::var(name).ok()))
}

/// The one place that picks the glyphs: `text` as it is in a UTF-8 locale (`utf8`), else with
/// the reports' non-ASCII glyphs in ASCII (`0 … 99` → `0 ... 99`, `latency (µs)` →
/// `latency (us)`, `produce → stream` → `produce -> stream`).
pub fn glyphs(text: &str, utf8: bool) -> Cow<'_, str> {
    if utf8 || text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut text = text.to_string();
    for (glyph, ascii) in ASCII_STAND_INS {
        if text.contains(glyph) {
            text = text.replace(glyph, ascii);
        }
    }
    Cow::Owned(text)
}

/// `text` in glyphs this terminal's locale shows.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    glyphs(text, utf8())
}

/// Whether output may be coloured: not when `NO_COLOR` is set to anything but empty.
pub fn is_colour_wanted(no_color: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|value| value.is_empty())
}

/// Whether this process may colour its output (`NO_COLOR` read once).
pub fn colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| is_colour_wanted(std::env::var_os("NO_COLOR")))
}

/// Whether the progress bars may draw with Unicode blocks and spinners.
pub fn unicode() -> bool {
    utf8()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locale(vars: &[(&str, &str)]) -> bool {
        is_utf8_locale(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_first_locale_variable_set_decides() {
        assert!(locale(&[("LANG", "C.UTF-8")]));
        assert!(locale(&[("LANG", "en_US.utf8")]));
        assert!(!locale(&[]), "none set: the C locale");
        assert!(!locale(&[("LANG", "C")]));
        assert!(!locale(&[("LC_ALL", "POSIX"), ("LANG", "C.UTF-8")]));
        assert!(locale(&[("LC_CTYPE", "de_DE.UTF-8"), ("LANG", "C")]));
        assert!(!locale(&[("LC_CTYPE", "de_DE.ISO-8859-1")]));
        assert!(
            locale(&[("LC_ALL", ""), ("LANG", "C.UTF-8")]),
            "empty is unset"
        );
    }

    #[test]
    fn outside_utf8_the_reports_glyphs_are_ascii() {
        let text = "consume ← stream 's'\n  offsets 0 … 9\n  latency (µs), publish → broker confirm: 1–2 × ±5%";
        assert_eq!(glyphs(text, true), text);
        let ascii = glyphs(text, false);
        assert!(ascii.is_ascii(), "{ascii}");
        assert_eq!(
            ascii,
            "consume <- stream 's'\n  offsets 0 ... 9\n  latency (us), publish -> broker confirm: 1-2 x +/-5%"
        );
    }

    #[test]
    fn no_color_set_to_anything_turns_colour_off() {
        assert!(is_colour_wanted(None));
        assert!(is_colour_wanted(Some("".into())));
        assert!(!is_colour_wanted(Some("1".into())));
    }
}
