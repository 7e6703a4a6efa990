//! Runnable flows of the patent figures.
