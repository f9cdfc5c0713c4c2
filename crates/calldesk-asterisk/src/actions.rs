//! Call controls → AMI actions (being written).
