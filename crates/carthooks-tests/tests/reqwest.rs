//! The behavioural suite on the async reqwest backend.

carthooks_tests::suite!(carthooks_tests::ReqwestSdk);
