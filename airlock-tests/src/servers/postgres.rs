//! A throwaway PostgreSQL server for the tests (see the parent module).
