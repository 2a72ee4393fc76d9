//! The rotation Lambda's handler, invoked with synthetic `LambdaEvent`s for all four steps against moto and the
//! private password-checking servers: both engines, both strategies, a step invoked twice, a token unknown to the
//! secret, rotation disabled, an already-finished token, grants replayed to the clone, user names too long for
//! the clone, (PostgreSQL, `log_statement=all`) no new password in the server log, and, under moto's IAM
//! enforcement, the shipped policies' actions: the service's are enough for a pool, and the function's without
//! GetRandomPassword make it fall back to its own generator.
//!
//! Each test's function logs into a buffer of its own, in lambda_runtime's format as the binary writes it but at
//! TRACE for every target, and only while that function's invocations run; the tests search it for the
//! passwords they handled (see `lambda::Lambda`).
//!
//! moto and rotation: moto's RotateSecret invokes the rotation Lambda through its Lambda emulation (Docker), and
//! without a Lambda ARN it labels the announced version AWSCURRENT at once. [`begin_rotation`] therefore calls
//! RotateSecret without a Lambda (which marks rotation enabled and announces the version, as AWS does before it
//! invokes the function), then moves the labels back to where AWS leaves them: the token's version, still without
//! a value, labelled AWSPENDING, and AWSCURRENT and AWSPREVIOUS where they were. It checks the result with
//! DescribeSecret. A secret that never had RotateSecret reports rotation disabled; moto's CancelRotateSecret
//! refuses a secret without a rotation Lambda, so it is not used.

#[macro_use]
mod conformance;
mod lambda;
