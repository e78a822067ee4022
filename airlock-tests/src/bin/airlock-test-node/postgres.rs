//! Roles on the postgres queue (see main.rs).

pub(crate) async fn main(_args: Vec<String>) -> anyhow::Result<()> {
    anyhow::bail!("the postgres roles are not written yet")
}
