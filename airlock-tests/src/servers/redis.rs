//! A throwaway Redis server for the tests (see the parent module).
