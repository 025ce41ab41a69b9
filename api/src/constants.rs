//! Well-known strings upstream metal-operator and boot-operator agree on: finalizers, annotations,
//! labels, secret keys, condition types and reasons.

/// Key of the username in a BMCSecret.
pub const BMC_SECRET_USERNAME_KEY: &str = "username";
/// Key of the password in a BMCSecret.
pub const BMC_SECRET_PASSWORD_KEY: &str = "password";
