//! How one secret is masked: its first characters, when it is long enough to show some, and the
//! mask character no real secret ends with.

/// What a masked value ends with; no real secret does.
pub const MASK: char = '…';

/// Secrets at least this long keep their first characters visible, so an operator can tell
/// them apart; shorter ones are shown as the mask alone.
const SHOW_PREFIX_FROM: usize = 16;

/// How many leading characters of a long secret are shown.
const PREFIX: usize = 4;

/// The masked form of `secret`: `whse…` for a long one, `…` for a short one.
pub fn mask(secret: &str) -> String {
    if secret.chars().count() >= SHOW_PREFIX_FROM {
        let visible: String = secret.chars().take(PREFIX).collect();
        format!("{visible}{MASK}")
    } else {
        MASK.to_string()
    }
}

/// Whether `value` is a masked one.
pub(super) fn is_masked(value: &str) -> bool {
    value.ends_with(MASK)
}
