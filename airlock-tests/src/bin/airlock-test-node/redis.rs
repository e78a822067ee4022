//! Roles on the redis queue (see main.rs).

pub(crate) async fn main(_args: Vec<String>) -> anyhow::Result<()> {
    anyhow::bail!("the redis roles are not written yet")
}
