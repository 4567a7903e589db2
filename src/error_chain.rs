//! One way to print an error with its causes, for log fields and opaque 5xx causes.

/// An error and its causes, `outer: inner: root`, for one log field.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
