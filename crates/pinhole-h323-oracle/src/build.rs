//! Builders of realistic PDUs (aligned PER).
