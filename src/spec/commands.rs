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
    /// A Kinesis stream the job consumes: a name or a full stream ARN (read access on that
    /// stream only).
    KinesisStream,
    /// The DynamoDB table holding a Kinesis consumer's leases and checkpoints.
    LeaseTable,
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
    // The long-running Kinesis consumer: windowed counts to S3, leases in DynamoDB. Its
    // `--region` is added by resolve (the spec's region), and `--lease_table` when absent.
    CommandSpec {
        name: "stream",
        takes_date: false,
        args: &[
            ArgSpec {
                name: "stream",
                role: ArgRole::KinesisStream,
                required: true,
            },
            ArgSpec {
                name: "output",
                role: ArgRole::Sink,
                required: true,
            },
            ArgSpec {
                name: "lease_table",
                role: ArgRole::LeaseTable,
                required: false,
            },
            ArgSpec {
                name: "window",
                role: ArgRole::Plain,
                required: false,
            },
            ArgSpec {
                name: "lateness",
                role: ArgRole::Plain,
                required: false,
            },
            ArgSpec {
                name: "position",
                role: ArgRole::Plain,
                required: false,
            },
        ],
    },
];

/// The built-in command that consumes a Kinesis stream.
pub const STREAM_COMMAND: &str = "stream";

pub fn lookup(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}
