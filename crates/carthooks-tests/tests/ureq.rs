//! The behavioural suite on the blocking ureq backend.

carthooks_tests::suite!(carthooks_tests::UreqSdk);
