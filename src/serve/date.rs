//! The `Date` response header, formatted once per second per thread instead of per response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

pub(super) fn with_http_date<R>(use_date: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    CACHED.with_borrow_mut(|(cached_second, text)| {
        if *cached_second != second {
            *text = httpdate::fmt_http_date(now);
            *cached_second = second;
        }
        use_date(text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_an_imf_fixdate_of_now() {
        let text = super::with_http_date(|d| String::from_utf8(d.to_vec()).unwrap());
        let parsed = httpdate::parse_http_date(&text).unwrap();
        let age = std::time::SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 2, "{text}");
        assert_eq!(text.len(), 29);
        assert!(text.ends_with(" GMT"));
    }
}
