//! The job commands `emrship-job` runs and the arguments each takes. Knowing which arguments
//! are read and which are written lets the instance profile grant exactly that.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRole {
    /// Data the job reads: `s3://` prefixes (read-only access).
    Input,
    /// A catalog: `s3://` files or `dynamodb://TABLE`.
    Catalog,
    /// Where results go: `s3://`, `postgres://…` or `sqlite://…`.
    Sink,
    /// A plain value.
    Plain,
}

#[derive(Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub role: ArgRole,
    pub required: bool,
}

#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Whether the command takes `--date` (filled with the run date).
    pub takes_date: bool,
    pub args: &'static [ArgSpec],
}

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "match-rate",
        takes_date: true,
        args: &[
            ArgSpec {
                name: "views",
                role: ArgRole::Input,
                required: true,
            },
            ArgSpec {
                name: "catalog",
                role: ArgRole::Catalog,
                required: true,
            },
            ArgSpec {
                name: "sink",
                role: ArgRole::Sink,
                required: true,
            },
        ],
    },
    CommandSpec {
        name: "rollup",
        takes_date: false,
        args: &[
            ArgSpec {
                name: "input",
                role: ArgRole::Input,
                required: true,
            },
            ArgSpec {
                name: "output",
                role: ArgRole::Sink,
                required: true,
            },
            ArgSpec {
                name: "granularity",
                role: ArgRole::Plain,
                required: false,
            },
        ],
    },
];

pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}
