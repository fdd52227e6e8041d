//! Spark executor sizing for EMR core/task nodes.
//!
//! Everything is sized from the memory YARN may hand out on a node
//! (`yarn.nodemanager.resource.memory-mb`, see [`catalog`]), never from the instance's RAM: the
//! AWS blog formula that starts from RAM asks for containers YARN cannot grant (for example one
//! 31744 MiB executor on an m5.2xlarge whose YARN memory is 24576 MiB).
//!
//! `nodes` always means the core + task nodes, the ones running a YARN NodeManager; the primary
//! node runs no executors. One container slot on those nodes is kept for the Spark driver (deploy
//! mode cluster) or the YARN ApplicationMaster (deploy mode client), so executors never take the
//! whole cluster and leave the application waiting for its own driver.

pub mod catalog;
pub mod memory;

pub use catalog::{Arch, InstanceType};

use std::fmt;

/// Spark's minimum executor memory overhead (`spark.executor.minMemoryOverhead`), MiB.
pub const MIN_MEMORY_OVERHEAD_MIB: u64 = 384;
/// The AWS EMR memory guidance fixes executor cores at 5 (the usual rule of thumb: more concurrent
/// tasks per executor stop adding I/O throughput and enlarge each JVM's heap and GC pauses).
const MAX_AUTO_EXECUTOR_CORES: u32 = 5;
/// vCPUs left on each node for the NodeManager, DataNode and OS.
const DAEMON_VCPUS: u32 = 1;
/// Native workload heap bounds: the JVM only schedules tasks and pipes bytes to the Rust child,
/// so a small heap is enough, but not so small that Spark's own bookkeeping runs out.
const NATIVE_HEAP_MIN_MIB: u64 = 1024;
const NATIVE_HEAP_MAX_MIB: u64 = 4096;
/// Slots kept on the worker nodes for the driver (cluster mode) or ApplicationMaster (client mode).
const RESERVED_SLOTS: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployMode {
    /// The driver runs inside a YARN container on a core/task node.
    Cluster,
    /// The driver runs on the primary node; a YARN ApplicationMaster container still runs on a
    /// core/task node.
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// The executors' work happens in the JVM heap.
    Jvm,
    /// The executor's real work is a child Rust process (`emrship-job`) that YARN counts against
    /// the container; the JVM heap can stay small.
    Native,
}

/// Executor settings given by the job spec instead of `auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplicitExecutors {
    pub instances: u32,
    pub cores: u32,
    pub memory_mib: u64,
    /// `None`: [`memory_overhead_mib`] of the memory for the workload.
    pub memory_overhead_mib: Option<u64>,
}

/// The Spark settings for one job on one cluster shape, and how they were reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecutorSizing {
    pub instance_type: &'static str,
    /// Core + task nodes.
    pub nodes: u32,
    pub yarn_memory_mib: u64,
    pub vcpu: u32,
    pub executor_cores: u32,
    /// `spark.executor.memory` (the JVM heap).
    pub executor_memory_mib: u64,
    /// `spark.executor.memoryOverhead`.
    pub executor_memory_overhead_mib: u64,
    /// How many executor containers one node holds.
    pub executors_per_node: u32,
    /// `spark.executor.instances`.
    pub executor_instances: u32,
    pub driver_cores: u32,
    pub driver_memory_mib: u64,
    pub driver_memory_overhead_mib: u64,
    /// `spark.default.parallelism`: two tasks per executor core.
    pub default_parallelism: u32,
    /// Human-readable steps, one per line, e.g.
    /// `executors per node = max(1, (16 - 1) / 5) = 3`.
    pub arithmetic: Vec<String>,
}

/// Why a sizing cannot run on the cluster. Each message says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizingProblem {
    /// Executor memory + overhead is more than YARN may give a container on one node.
    ContainerTooLarge {
        requested_mib: u64,
        yarn_memory_mib: u64,
        instance_type: &'static str,
        /// The largest `executors.memory` whose container (with the same overhead rule) fits;
        /// 0 when the overhead alone is too large.
        max_executor_memory_mib: u64,
    },
    TooManyCores {
        cores: u32,
        vcpu: u32,
        instance_type: &'static str,
    },
    /// More executors than the nodes hold, once the driver / ApplicationMaster slot is taken.
    DoesNotFit {
        requested: u32,
        capacity: u32,
        per_node: u32,
        nodes: u32,
        driver_takes_slot: bool,
    },
    NoWorkerNodes,
    /// An explicit executor setting is 0 (`field` is its spec key, e.g. `executors.cores`).
    ZeroValue {
        field: &'static str,
    },
}

impl fmt::Display for SizingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SizingProblem::ContainerTooLarge {
                requested_mib,
                yarn_memory_mib,
                instance_type,
                max_executor_memory_mib,
            } => {
                write!(
                    f,
                    "an executor container asks YARN for {requested_mib} MiB (executor memory + \
                     memory overhead), but a {instance_type} node gives YARN only \
                     {yarn_memory_mib} MiB (yarn.nodemanager.resource.memory-mb); "
                )?;
                if max_executor_memory_mib == 0 {
                    write!(
                        f,
                        "the memory overhead alone is too large: lower executors.memory_overhead \
                         or pick a larger instance type"
                    )
                } else {
                    write!(
                        f,
                        "lower executors.memory to at most {max_executor_memory_mib}m or pick a \
                         larger instance type"
                    )
                }
            }
            SizingProblem::TooManyCores {
                cores,
                vcpu,
                instance_type,
            } => {
                write!(
                    f,
                    "executors.cores is {cores}, but a {instance_type} node has only {vcpu} \
                     vCPU; set executors.cores to at most {vcpu}"
                )?;
                if vcpu > DAEMON_VCPUS {
                    write!(
                        f,
                        " ({} leaves a vCPU for the Hadoop daemons)",
                        vcpu - DAEMON_VCPUS
                    )?;
                }
                write!(f, " or pick a larger instance type")
            }
            SizingProblem::DoesNotFit {
                requested,
                capacity,
                per_node,
                nodes,
                driver_takes_slot,
            } => {
                let executor_word = if requested == 1 {
                    "executor"
                } else {
                    "executors"
                };
                if per_node == 0 {
                    return write!(
                        f,
                        "{requested} {executor_word} requested, but not even one executor \
                         container fits on a node, so none can run; make executors.memory \
                         smaller or pick a larger instance type"
                    );
                }
                let reserved = if driver_takes_slot { RESERVED_SLOTS } else { 0 };
                let slots = u64::from(per_node) * u64::from(nodes);
                write!(
                    f,
                    "{requested} {executor_word} requested, but only {capacity} fit: {nodes} \
                     node(s) × {per_node} executor container(s) per node = {slots} slot(s)"
                )?;
                if driver_takes_slot {
                    write!(
                        f,
                        ", minus 1 kept for the Spark driver (deploy mode cluster) or the YARN \
                         ApplicationMaster (deploy mode client)"
                    )?;
                }
                let nodes_needed =
                    (u64::from(requested) + u64::from(reserved)).div_ceil(u64::from(per_node));
                if capacity > 0 {
                    write!(
                        f,
                        "; set executors.instances to at most {capacity}, or use at least \
                         {nodes_needed} nodes"
                    )
                } else {
                    write!(
                        f,
                        "; use at least {nodes_needed} nodes, or a larger instance type that \
                         holds more containers per node"
                    )
                }
            }
            SizingProblem::NoWorkerNodes => write!(
                f,
                "the cluster has no core or task nodes, and the primary node runs no Spark \
                 executors; add core nodes"
            ),
            SizingProblem::ZeroValue { field } => {
                write!(f, "{field} is 0; it must be at least 1")
            }
        }
    }
}

impl std::error::Error for SizingProblem {}

/// The memory overhead Spark needs next to an executor heap of `executor_memory_mib`, for
/// explicit sizing where the spec gives no overhead.
///
/// - JVM: Spark's own default, `max(384, 10% of the heap)`, rounded up (Spark rounds down; up is
///   never smaller, so a container we check is never smaller than the one Spark asks for).
/// - Native: `max(384, 3 × heap)`, i.e. 75% of the container. YARN's memory monitor counts the
///   whole process tree of the container, so the RSS of the `emrship-job` child process counts
///   against the container while the JVM only pipes bytes to it. The overhead, not the heap, must
///   hold the Rust process, or YARN kills the container.
pub fn memory_overhead_mib(executor_memory_mib: u64, workload: Workload) -> u64 {
    let proportional = match workload {
        Workload::Jvm => executor_memory_mib.div_ceil(10),
        Workload::Native => executor_memory_mib.saturating_mul(3),
    };
    proportional.max(MIN_MEMORY_OVERHEAD_MIB)
}

/// Sizes executors to fill the worker nodes: up to 5 cores each, as many containers per node as
/// the vCPUs allow (keeping one vCPU for the daemons), the node's YARN memory split evenly
/// between them, and one slot left for the driver or ApplicationMaster.
///
/// # Errors
/// [`SizingProblem::NoWorkerNodes`] for 0 nodes; [`SizingProblem::DoesNotFit`] when the nodes
/// hold only the driver's (or ApplicationMaster's) container and no executor.
pub fn size_auto(
    instance: &'static InstanceType,
    nodes: u32,
    deploy_mode: DeployMode,
    workload: Workload,
) -> Result<ExecutorSizing, SizingProblem> {
    if nodes == 0 {
        return Err(SizingProblem::NoWorkerNodes);
    }
    let vcpu = instance.vcpu;
    let yarn_memory_mib = u64::from(instance.yarn_memory_mib);
    let vcpu_for_executors = vcpu.saturating_sub(DAEMON_VCPUS);
    let mut arithmetic = vec![node_line(instance, nodes)];

    let executor_cores = MAX_AUTO_EXECUTOR_CORES.min(vcpu_for_executors).max(1);
    arithmetic.push(format!(
        "executor cores = min({MAX_AUTO_EXECUTOR_CORES}, {vcpu} - {DAEMON_VCPUS}) = \
         {executor_cores} (one vCPU stays with the Hadoop daemons)"
    ));

    let executors_per_node = (vcpu_for_executors / executor_cores).max(1);
    arithmetic.push(format!(
        "executors per node = max(1, ({vcpu} - {DAEMON_VCPUS}) / {executor_cores}) = \
         {executors_per_node}"
    ));

    let container_mib = yarn_memory_mib / u64::from(executors_per_node);
    arithmetic.push(format!(
        "container per executor = floor({yarn_memory_mib} / {executors_per_node}) = \
         {container_mib} MiB"
    ));

    let (executor_memory_mib, overhead_mib) =
        split_container(container_mib, workload, &mut arithmetic);

    let slots = executors_per_node.saturating_mul(nodes);
    let executor_instances = slots.saturating_sub(RESERVED_SLOTS);
    arithmetic.push(format!(
        "executor instances = {executors_per_node} × {nodes} node(s) - {RESERVED_SLOTS} (slot \
         for {}) = {executor_instances}",
        reserved_slot_holder(deploy_mode)
    ));
    if executor_instances == 0 {
        return Err(SizingProblem::DoesNotFit {
            requested: 1,
            capacity: 0,
            per_node: executors_per_node,
            nodes,
            driver_takes_slot: true,
        });
    }

    arithmetic.push(driver_line(
        deploy_mode,
        executor_cores,
        executor_memory_mib,
        overhead_mib,
    ));
    let default_parallelism = 2u32
        .saturating_mul(executor_instances)
        .saturating_mul(executor_cores);
    arithmetic.push(format!(
        "default parallelism = 2 × {executor_instances} × {executor_cores} = \
         {default_parallelism}"
    ));

    Ok(ExecutorSizing {
        instance_type: instance.name,
        nodes,
        yarn_memory_mib,
        vcpu,
        executor_cores,
        executor_memory_mib,
        executor_memory_overhead_mib: overhead_mib,
        executors_per_node,
        executor_instances,
        driver_cores: executor_cores,
        driver_memory_mib: executor_memory_mib,
        driver_memory_overhead_mib: overhead_mib,
        default_parallelism,
        arithmetic,
    })
}

/// Checks executor settings given in the spec against the cluster and reports every problem at
/// once. The driver gets the executors' shape, as in [`size_auto`].
///
/// # Errors
/// Every [`SizingProblem`] found, in a stable order: no nodes, zero values, container too large,
/// too many cores, too many executors.
pub fn check_explicit(
    instance: &'static InstanceType,
    nodes: u32,
    deploy_mode: DeployMode,
    workload: Workload,
    explicit: &ExplicitExecutors,
) -> Result<ExecutorSizing, Vec<SizingProblem>> {
    let mut problems = Vec::new();
    let vcpu = instance.vcpu;
    let yarn_memory_mib = u64::from(instance.yarn_memory_mib);
    let ExplicitExecutors {
        instances,
        cores,
        memory_mib,
        memory_overhead_mib: given_overhead_mib,
    } = *explicit;

    if nodes == 0 {
        problems.push(SizingProblem::NoWorkerNodes);
    }
    for (field, value) in [
        ("executors.instances", u64::from(instances)),
        ("executors.cores", u64::from(cores)),
        ("executors.memory", memory_mib),
    ] {
        if value == 0 {
            problems.push(SizingProblem::ZeroValue { field });
        }
    }

    let mut arithmetic = vec![node_line(instance, nodes)];
    let overhead_mib = match given_overhead_mib {
        Some(given) => {
            arithmetic.push(format!("memory overhead = {given} MiB (given)"));
            given
        }
        None => {
            let overhead = memory_overhead_mib(memory_mib, workload);
            arithmetic.push(match workload {
                Workload::Jvm => format!(
                    "memory overhead = max({MIN_MEMORY_OVERHEAD_MIB}, ceil({memory_mib} × 0.10)) \
                     = {overhead} MiB"
                ),
                Workload::Native => format!(
                    "memory overhead = max({MIN_MEMORY_OVERHEAD_MIB}, 3 × {memory_mib}) = \
                     {overhead} MiB (75% of the container holds the native child process)"
                ),
            });
            overhead
        }
    };
    let container_mib = memory_mib.saturating_add(overhead_mib);
    arithmetic.push(format!(
        "container per executor = {memory_mib} + {overhead_mib} = {container_mib} MiB"
    ));

    if container_mib > yarn_memory_mib {
        problems.push(SizingProblem::ContainerTooLarge {
            requested_mib: container_mib,
            yarn_memory_mib,
            instance_type: instance.name,
            max_executor_memory_mib: largest_memory_that_fits(
                yarn_memory_mib,
                workload,
                given_overhead_mib,
            ),
        });
    }
    if cores > vcpu {
        problems.push(SizingProblem::TooManyCores {
            cores,
            vcpu,
            instance_type: instance.name,
        });
    }

    let executors_per_node = match yarn_memory_mib.checked_div(container_mib) {
        Some(fitting) => u32::try_from(fitting).unwrap_or(u32::MAX),
        // A zero-size container is already reported as a zero value.
        None => 0,
    };
    arithmetic.push(format!(
        "executors per node = floor({yarn_memory_mib} / {container_mib}) = {executors_per_node}"
    ));
    let capacity = executors_per_node
        .saturating_mul(nodes)
        .saturating_sub(RESERVED_SLOTS);
    arithmetic.push(format!(
        "capacity = {executors_per_node} × {nodes} node(s) - {RESERVED_SLOTS} (slot for {}) = \
         {capacity}",
        reserved_slot_holder(deploy_mode)
    ));
    if nodes > 0 && container_mib > 0 && instances > capacity {
        problems.push(SizingProblem::DoesNotFit {
            requested: instances,
            capacity,
            per_node: executors_per_node,
            nodes,
            driver_takes_slot: true,
        });
    }

    if !problems.is_empty() {
        return Err(problems);
    }

    arithmetic.push(driver_line(deploy_mode, cores, memory_mib, overhead_mib));
    let default_parallelism = 2u32.saturating_mul(instances).saturating_mul(cores);
    arithmetic.push(format!(
        "default parallelism = 2 × {instances} × {cores} = {default_parallelism}"
    ));

    Ok(ExecutorSizing {
        instance_type: instance.name,
        nodes,
        yarn_memory_mib,
        vcpu,
        executor_cores: cores,
        executor_memory_mib: memory_mib,
        executor_memory_overhead_mib: overhead_mib,
        executors_per_node,
        executor_instances: instances,
        driver_cores: cores,
        driver_memory_mib: memory_mib,
        driver_memory_overhead_mib: overhead_mib,
        default_parallelism,
        arithmetic,
    })
}

/// Splits one container into (heap, overhead) for auto sizing, explaining it in `arithmetic`.
fn split_container(
    container_mib: u64,
    workload: Workload,
    arithmetic: &mut Vec<String>,
) -> (u64, u64) {
    match workload {
        Workload::Jvm => {
            // heap × 1.1 = container, i.e. Spark's default 10% overhead on top of the heap.
            let heap_mib = container_mib * 10 / 11;
            let overhead_mib = container_mib - heap_mib;
            arithmetic.push(format!(
                "executor memory = floor({container_mib} / 1.1) = {heap_mib} MiB, memory \
                 overhead = {container_mib} - {heap_mib} = {overhead_mib} MiB"
            ));
            if overhead_mib >= MIN_MEMORY_OVERHEAD_MIB {
                return (heap_mib, overhead_mib);
            }
            let heap_mib = container_mib.saturating_sub(MIN_MEMORY_OVERHEAD_MIB);
            let overhead_mib = container_mib - heap_mib;
            arithmetic.push(format!(
                "overhead below Spark's minimum of {MIN_MEMORY_OVERHEAD_MIB} MiB: memory \
                 overhead = {overhead_mib} MiB, executor memory = {container_mib} - \
                 {overhead_mib} = {heap_mib} MiB"
            ));
            (heap_mib, overhead_mib)
        }
        Workload::Native => {
            let clamped_mib = (container_mib / 8).clamp(NATIVE_HEAP_MIN_MIB, NATIVE_HEAP_MAX_MIB);
            let heap_mib = clamped_mib.min(container_mib.saturating_sub(MIN_MEMORY_OVERHEAD_MIB));
            let overhead_mib = container_mib - heap_mib;
            arithmetic.push(format!(
                "executor memory (JVM heap) = clamp(floor({container_mib} / 8), \
                 {NATIVE_HEAP_MIN_MIB}, {NATIVE_HEAP_MAX_MIB}) = {clamped_mib} MiB"
            ));
            if heap_mib < clamped_mib {
                arithmetic.push(format!(
                    "capped so the overhead keeps Spark's minimum of {MIN_MEMORY_OVERHEAD_MIB} \
                     MiB: executor memory = {container_mib} - {MIN_MEMORY_OVERHEAD_MIB} = \
                     {heap_mib} MiB"
                ));
            }
            arithmetic.push(format!(
                "memory overhead = {container_mib} - {heap_mib} = {overhead_mib} MiB (YARN \
                 counts the emrship-job child process against the container, so the overhead \
                 holds it)"
            ));
            (heap_mib, overhead_mib)
        }
    }
}

/// The largest executor memory whose container fits in `yarn_memory_mib`, with the overhead
/// either given or derived from the memory by [`memory_overhead_mib`]. 0 when nothing fits.
fn largest_memory_that_fits(
    yarn_memory_mib: u64,
    workload: Workload,
    given_overhead_mib: Option<u64>,
) -> u64 {
    if let Some(overhead_mib) = given_overhead_mib {
        return yarn_memory_mib.saturating_sub(overhead_mib);
    }
    let fits = |memory_mib: u64| {
        memory_mib.saturating_add(memory_overhead_mib(memory_mib, workload)) <= yarn_memory_mib
    };
    if !fits(0) {
        return 0;
    }
    // memory + overhead(memory) grows with memory, so binary-search the boundary.
    let (mut fitting, mut too_large) = (0u64, yarn_memory_mib.saturating_add(1));
    while too_large - fitting > 1 {
        let middle = fitting + (too_large - fitting) / 2;
        if fits(middle) {
            fitting = middle;
        } else {
            too_large = middle;
        }
    }
    fitting
}

fn node_line(instance: &InstanceType, nodes: u32) -> String {
    format!(
        "{nodes} worker node(s) of {}: {} vCPU, {} GiB RAM, of which YARN may use {} MiB \
         (yarn.nodemanager.resource.memory-mb)",
        instance.name, instance.vcpu, instance.memory_gib, instance.yarn_memory_mib
    )
}

fn reserved_slot_holder(deploy_mode: DeployMode) -> &'static str {
    match deploy_mode {
        DeployMode::Cluster => "the Spark driver, which runs in a YARN container in cluster mode",
        DeployMode::Client => {
            "the YARN ApplicationMaster; in client mode the driver runs on the primary node"
        }
    }
}

fn driver_line(deploy_mode: DeployMode, cores: u32, memory_mib: u64, overhead_mib: u64) -> String {
    let why = match deploy_mode {
        DeployMode::Cluster => "the executor's container shape, so it fits the reserved slot",
        DeployMode::Client => "the executor's shape, so the driver can hold what an executor holds",
    };
    format!("driver = {cores} core(s), {memory_mib} MiB + {overhead_mib} MiB overhead ({why})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, StrDeserializer};
    use serde::Deserialize;

    fn instance(name: &str) -> &'static InstanceType {
        catalog::lookup(name).unwrap_or_else(|| panic!("{name} not in the catalog"))
    }

    fn explicit(instances: u32, cores: u32, memory_mib: u64) -> ExplicitExecutors {
        ExplicitExecutors {
            instances,
            cores,
            memory_mib,
            memory_overhead_mib: None,
        }
    }

    /// The DERIVED YARN-aware vectors from emr-facts 2.2:
    /// (type, cores, executors per node, heap MiB, overhead MiB).
    const JVM_AUTO_VECTORS: &[(&str, u32, u32, u64, u64)] = &[
        ("m5.xlarge", 3, 1, 11170, 1118),
        ("m5.2xlarge", 5, 1, 22341, 2235),
        ("m5.4xlarge", 5, 3, 17376, 1738),
        ("r5.2xlarge", 5, 1, 52130, 5214),
        ("r5.4xlarge", 5, 3, 37236, 3724),
        ("r5.12xlarge", 5, 9, 38890, 3890),
        ("c5.2xlarge", 5, 1, 11170, 1118),
        ("m6g.2xlarge", 5, 1, 21294, 2130),
        ("m7g.2xlarge", 5, 1, 21294, 2130),
        ("r6g.2xlarge", 5, 1, 49338, 4934),
    ];

    #[test]
    fn auto_jvm_matches_the_yarn_aware_vectors() {
        for &(name, cores, per_node, heap, overhead) in JVM_AUTO_VECTORS {
            let sizing = size_auto(instance(name), 10, DeployMode::Cluster, Workload::Jvm)
                .unwrap_or_else(|problem| panic!("{name}: {problem}"));
            assert_eq!(sizing.executor_cores, cores, "{name} cores");
            assert_eq!(sizing.executors_per_node, per_node, "{name} per node");
            assert_eq!(sizing.executor_memory_mib, heap, "{name} heap");
            assert_eq!(
                sizing.executor_memory_overhead_mib, overhead,
                "{name} overhead"
            );
            assert_eq!(
                sizing.executor_instances,
                per_node * 10 - 1,
                "{name} instances"
            );
            assert_eq!(sizing.driver_cores, cores, "{name} driver cores");
            assert_eq!(sizing.driver_memory_mib, heap, "{name} driver heap");
            assert_eq!(
                sizing.driver_memory_overhead_mib, overhead,
                "{name} driver overhead"
            );
            assert_eq!(
                sizing.default_parallelism,
                2 * sizing.executor_instances * cores,
                "{name} parallelism"
            );
        }
    }

    #[test]
    fn seed_003_cluster_auto() {
        // 6 nodes of 16 vCPU / 64 GiB.
        let sizing = size_auto(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Jvm,
        )
        .unwrap();
        assert_eq!(sizing.yarn_memory_mib, 57344);
        assert_eq!(sizing.executor_cores, 5);
        assert_eq!(sizing.executors_per_node, 3);
        assert_eq!(sizing.executor_instances, 17);
        assert_eq!(sizing.default_parallelism, 170);
        assert_eq!(sizing.instance_type, "m5.4xlarge");
        assert_eq!(sizing.nodes, 6);
        assert_eq!(sizing.vcpu, 16);
    }

    #[test]
    fn seed_003_explicit_24_executors_leave_no_slot_for_the_driver() {
        let problems = check_explicit(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Jvm,
            &explicit(24, 6, 11600),
        )
        .unwrap_err();
        assert_eq!(
            problems,
            vec![SizingProblem::DoesNotFit {
                requested: 24,
                capacity: 23,
                per_node: 4,
                nodes: 6,
                driver_takes_slot: true,
            }]
        );
        let message = problems[0].to_string();
        for needle in [
            "24 executors",
            "only 23",
            "6 node(s) × 4",
            "24 slot(s)",
            "at most 23",
            "7 nodes",
        ] {
            assert!(message.contains(needle), "{needle:?} missing in {message}");
        }
    }

    #[test]
    fn seed_003_explicit_23_executors_fit() {
        let sizing = check_explicit(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Jvm,
            &explicit(23, 6, 11600),
        )
        .unwrap();
        assert_eq!(sizing.executor_memory_overhead_mib, 1160);
        assert_eq!(sizing.executors_per_node, 4);
        assert_eq!(sizing.executor_instances, 23);
        assert_eq!(sizing.executor_cores, 6);
        assert_eq!(sizing.default_parallelism, 2 * 23 * 6);
        assert_eq!(sizing.driver_memory_mib, 11600);
        assert_eq!(sizing.driver_memory_overhead_mib, 1160);
        assert!(sizing
            .arithmetic
            .iter()
            .any(|line| line == "container per executor = 11600 + 1160 = 12760 MiB"));
        assert!(sizing
            .arithmetic
            .iter()
            .any(|line| line == "executors per node = floor(57344 / 12760) = 4"));
    }

    #[test]
    fn auto_arithmetic_explains_each_step() {
        let sizing = size_auto(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Jvm,
        )
        .unwrap();
        let expected = [
            "executors per node = max(1, (16 - 1) / 5) = 3",
            "container per executor = floor(57344 / 3) = 19114 MiB",
            "executor memory = floor(19114 / 1.1) = 17376 MiB, memory overhead = 19114 - 17376 = 1738 MiB",
            "default parallelism = 2 × 17 × 5 = 170",
        ];
        for line in expected {
            assert!(
                sizing.arithmetic.iter().any(|have| have == line),
                "{line:?} not in {:#?}",
                sizing.arithmetic
            );
        }
        let instances_line = sizing
            .arithmetic
            .iter()
            .find(|line| line.starts_with("executor instances"))
            .unwrap();
        assert!(
            instances_line.contains("3 × 6 node(s) - 1"),
            "{instances_line}"
        );
        assert!(instances_line.contains("Spark driver"), "{instances_line}");
        assert!(instances_line.ends_with("= 17"), "{instances_line}");

        let client =
            size_auto(instance("m5.4xlarge"), 6, DeployMode::Client, Workload::Jvm).unwrap();
        assert!(client
            .arithmetic
            .iter()
            .any(|line| line.contains("ApplicationMaster")));
        assert_eq!(client.executor_instances, 17);
    }

    #[test]
    fn auto_with_no_nodes() {
        assert_eq!(
            size_auto(instance("m5.xlarge"), 0, DeployMode::Cluster, Workload::Jvm),
            Err(SizingProblem::NoWorkerNodes)
        );
    }

    #[test]
    fn auto_on_one_node_with_one_slot_does_not_fit() {
        for deploy_mode in [DeployMode::Cluster, DeployMode::Client] {
            let problem =
                size_auto(instance("m5.2xlarge"), 1, deploy_mode, Workload::Jvm).unwrap_err();
            assert_eq!(
                problem,
                SizingProblem::DoesNotFit {
                    requested: 1,
                    capacity: 0,
                    per_node: 1,
                    nodes: 1,
                    driver_takes_slot: true,
                }
            );
            let message = problem.to_string();
            assert!(message.contains("at least 2 nodes"), "{message}");
        }
        // Three slots on one node: two executors and the driver.
        let sizing = size_auto(
            instance("m5.4xlarge"),
            1,
            DeployMode::Cluster,
            Workload::Jvm,
        )
        .unwrap();
        assert_eq!(sizing.executor_instances, 2);
    }

    #[test]
    fn auto_native_keeps_a_small_heap_and_a_large_overhead() {
        // (type, container MiB, heap MiB)
        let cases: &[(&str, u64, u64)] = &[
            // 57344 / 3 = 19114; 19114 / 8 = 2389.
            ("m5.4xlarge", 19114, 2389),
            // 12288 / 1 = 12288; 12288 / 8 = 1536.
            ("m5.xlarge", 12288, 1536),
            // 5632 / 8 = 704, raised to 1024.
            ("c6g.xlarge", 5632, 1024),
            // 57344 / 8 = 7168, capped at 4096.
            ("r5.2xlarge", 57344, 4096),
        ];
        for &(name, container, heap) in cases {
            let sizing =
                size_auto(instance(name), 4, DeployMode::Cluster, Workload::Native).unwrap();
            assert_eq!(sizing.executor_memory_mib, heap, "{name}");
            assert_eq!(
                sizing.executor_memory_overhead_mib,
                container - heap,
                "{name}"
            );
            assert_eq!(sizing.driver_memory_mib, heap, "{name}");
            assert!(
                sizing
                    .arithmetic
                    .iter()
                    .any(|line| line.contains("emrship-job")),
                "{name}"
            );
        }
    }

    #[test]
    fn container_split_keeps_the_minimum_overhead() {
        let mut arithmetic = Vec::new();
        // 2200 / 1.1 = 2000, overhead 200 < 384.
        assert_eq!(
            split_container(2200, Workload::Jvm, &mut arithmetic),
            (1816, 384)
        );
        assert!(arithmetic
            .iter()
            .any(|line| line.contains("minimum of 384")));
        // Native heap 1024 would leave less than 384 MiB of overhead in 1200 MiB.
        assert_eq!(
            split_container(1200, Workload::Native, &mut Vec::new()),
            (816, 384)
        );
        // Degenerate containers do not panic.
        assert_eq!(
            split_container(100, Workload::Jvm, &mut Vec::new()),
            (0, 100)
        );
        assert_eq!(
            split_container(0, Workload::Native, &mut Vec::new()),
            (0, 0)
        );
    }

    #[test]
    fn overhead_rules() {
        let cases = [
            (11600, Workload::Jvm, 1160),
            (11601, Workload::Jvm, 1161),
            (1024, Workload::Jvm, 384),
            (0, Workload::Jvm, 384),
            (37888, Workload::Jvm, 3789),
            (4096, Workload::Native, 12288),
            (100, Workload::Native, 384),
            (u64::MAX, Workload::Native, u64::MAX),
        ];
        for (memory, workload, overhead) in cases {
            assert_eq!(
                memory_overhead_mib(memory, workload),
                overhead,
                "{memory} {workload:?}"
            );
        }
    }

    #[test]
    fn explicit_reports_every_problem_at_once() {
        let problems = check_explicit(
            instance("m5.xlarge"),
            2,
            DeployMode::Cluster,
            Workload::Jvm,
            &explicit(10, 8, 16 * 1024),
        )
        .unwrap_err();
        // 16384 + 1639 = 18023 > 12288; the largest heap that fits is 11170 (11170 + 1117 = 12287).
        assert_eq!(
            problems,
            vec![
                SizingProblem::ContainerTooLarge {
                    requested_mib: 18023,
                    yarn_memory_mib: 12288,
                    instance_type: "m5.xlarge",
                    max_executor_memory_mib: 11170,
                },
                SizingProblem::TooManyCores {
                    cores: 8,
                    vcpu: 4,
                    instance_type: "m5.xlarge",
                },
                SizingProblem::DoesNotFit {
                    requested: 10,
                    capacity: 0,
                    per_node: 0,
                    nodes: 2,
                    driver_takes_slot: true,
                },
            ]
        );
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(messages[0].contains("18023 MiB"), "{}", messages[0]);
        assert!(
            messages[0].contains("m5.xlarge node gives YARN only 12288 MiB"),
            "{}",
            messages[0]
        );
        assert!(messages[0].contains("at most 11170m"), "{}", messages[0]);
        assert!(messages[1].contains("only 4 vCPU"), "{}", messages[1]);
        assert!(
            messages[1].contains("at most 4 (3 leaves"),
            "{}",
            messages[1]
        );
        assert!(messages[2].contains("not even one"), "{}", messages[2]);
    }

    #[test]
    fn suggested_max_memory_really_is_the_largest_that_fits() {
        for workload in [Workload::Jvm, Workload::Native] {
            for name in ["m5.xlarge", "c6g.xlarge", "r5.12xlarge", "c5.9xlarge"] {
                let yarn = u64::from(instance(name).yarn_memory_mib);
                let max = largest_memory_that_fits(yarn, workload, None);
                assert!(max + memory_overhead_mib(max, workload) <= yarn, "{name}");
                assert!(
                    max + 1 + memory_overhead_mib(max + 1, workload) > yarn,
                    "{name}"
                );
            }
        }
        assert_eq!(
            largest_memory_that_fits(12288, Workload::Jvm, Some(2000)),
            10288
        );
        assert_eq!(
            largest_memory_that_fits(12288, Workload::Jvm, Some(20000)),
            0
        );
        assert_eq!(largest_memory_that_fits(300, Workload::Jvm, None), 0);
    }

    #[test]
    fn explicit_overhead_is_used_as_given() {
        let problems = check_explicit(
            instance("m5.xlarge"),
            3,
            DeployMode::Client,
            Workload::Native,
            &ExplicitExecutors {
                instances: 2,
                cores: 3,
                memory_mib: 2048,
                memory_overhead_mib: Some(20000),
            },
        )
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let message = problems[0].to_string();
        assert!(message.contains("22048 MiB"), "{message}");
        assert!(message.contains("overhead alone is too large"), "{message}");

        let sizing = check_explicit(
            instance("m5.xlarge"),
            3,
            DeployMode::Client,
            Workload::Native,
            &ExplicitExecutors {
                instances: 2,
                cores: 3,
                memory_mib: 2048,
                memory_overhead_mib: Some(8192),
            },
        )
        .unwrap();
        assert_eq!(sizing.executor_memory_overhead_mib, 8192);
        assert_eq!(sizing.executors_per_node, 1);
        assert!(sizing
            .arithmetic
            .iter()
            .any(|line| line.contains("(given)")));
    }

    #[test]
    fn explicit_native_default_overhead_is_three_times_the_heap() {
        let sizing = check_explicit(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Native,
            &explicit(17, 5, 4096),
        )
        .unwrap();
        assert_eq!(sizing.executor_memory_overhead_mib, 12288);
        // 57344 / 16384 = 3.5 → 3 per node.
        assert_eq!(sizing.executors_per_node, 3);
    }

    #[test]
    fn explicit_zero_values_and_no_nodes_do_not_panic() {
        let problems = check_explicit(
            instance("m5.xlarge"),
            0,
            DeployMode::Cluster,
            Workload::Jvm,
            &ExplicitExecutors {
                instances: 0,
                cores: 0,
                memory_mib: 0,
                memory_overhead_mib: Some(0),
            },
        )
        .unwrap_err();
        assert_eq!(
            problems,
            vec![
                SizingProblem::NoWorkerNodes,
                SizingProblem::ZeroValue {
                    field: "executors.instances"
                },
                SizingProblem::ZeroValue {
                    field: "executors.cores"
                },
                SizingProblem::ZeroValue {
                    field: "executors.memory"
                },
            ]
        );
        for problem in &problems {
            assert!(!problem.to_string().is_empty());
        }
    }

    #[test]
    fn explicit_extreme_values_do_not_panic() {
        let problems = check_explicit(
            instance("r7i.48xlarge"),
            u32::MAX,
            DeployMode::Cluster,
            Workload::Native,
            &ExplicitExecutors {
                instances: u32::MAX,
                cores: u32::MAX,
                memory_mib: u64::MAX,
                memory_overhead_mib: None,
            },
        )
        .unwrap_err();
        assert!(problems
            .iter()
            .any(|p| matches!(p, SizingProblem::ContainerTooLarge { .. })));
        for problem in &problems {
            let _ = problem.to_string();
        }

        // Tiny containers: more per node than fit in a u32 is impossible, but many still fit.
        let sizing = check_explicit(
            instance("r7i.48xlarge"),
            u32::MAX,
            DeployMode::Cluster,
            Workload::Jvm,
            &ExplicitExecutors {
                instances: u32::MAX - 1,
                cores: 1,
                memory_mib: 1,
                memory_overhead_mib: Some(1),
            },
        )
        .unwrap();
        assert_eq!(sizing.executors_per_node, 1490944 / 2);
        assert_eq!(sizing.default_parallelism, u32::MAX);
    }

    #[test]
    fn does_not_fit_messages() {
        let no_room_left = SizingProblem::DoesNotFit {
            requested: 1,
            capacity: 0,
            per_node: 1,
            nodes: 1,
            driver_takes_slot: true,
        };
        let message = no_room_left.to_string();
        assert!(
            message.starts_with("1 executor requested, but only 0 fit"),
            "{message}"
        );
        assert!(!message.contains("at most 0"), "{message}");

        let without_reserved_slot = SizingProblem::DoesNotFit {
            requested: 9,
            capacity: 8,
            per_node: 4,
            nodes: 2,
            driver_takes_slot: false,
        };
        let message = without_reserved_slot.to_string();
        assert!(!message.contains("minus 1"), "{message}");
        assert!(message.contains("at least 3 nodes"), "{message}");
    }

    #[test]
    fn no_worker_nodes_message_says_what_to_do() {
        let message = SizingProblem::NoWorkerNodes.to_string();
        assert!(message.contains("no core or task nodes"), "{message}");
        assert!(message.contains("add core nodes"), "{message}");
    }

    #[test]
    fn enums_deserialize_from_snake_case() {
        let deploy = |s: &str| DeployMode::deserialize(StrDeserializer::<ValueError>::new(s));
        let workload = |s: &str| Workload::deserialize(StrDeserializer::<ValueError>::new(s));
        assert_eq!(deploy("cluster").unwrap(), DeployMode::Cluster);
        assert_eq!(deploy("client").unwrap(), DeployMode::Client);
        assert!(deploy("Cluster").is_err());
        assert_eq!(workload("jvm").unwrap(), Workload::Jvm);
        assert_eq!(workload("native").unwrap(), Workload::Native);
    }

    /// Over the whole catalog: auto sizing is consistent with itself and with the explicit check.
    #[test]
    fn auto_sizing_always_passes_its_own_explicit_check() {
        let mut checked = 0;
        for instance in catalog::all() {
            let yarn = u64::from(instance.yarn_memory_mib);
            for nodes in 1..=20 {
                for workload in [Workload::Jvm, Workload::Native] {
                    for deploy_mode in [DeployMode::Cluster, DeployMode::Client] {
                        let context =
                            format!("{} × {nodes} {workload:?} {deploy_mode:?}", instance.name);
                        let sizing = match size_auto(instance, nodes, deploy_mode, workload) {
                            Ok(sizing) => sizing,
                            Err(SizingProblem::DoesNotFit {
                                per_node: 1,
                                nodes: 1,
                                ..
                            }) => continue,
                            Err(problem) => panic!("{context}: {problem}"),
                        };
                        let container =
                            sizing.executor_memory_mib + sizing.executor_memory_overhead_mib;
                        assert!(container <= yarn, "{context}");
                        assert!(
                            u64::from(sizing.executors_per_node) * container <= yarn,
                            "{context}"
                        );
                        assert!(sizing.executor_cores <= instance.vcpu, "{context}");
                        assert!(
                            sizing.executor_cores * sizing.executors_per_node < instance.vcpu,
                            "{context}: a vCPU stays with the daemons"
                        );
                        assert!(
                            sizing.executor_memory_overhead_mib >= MIN_MEMORY_OVERHEAD_MIB,
                            "{context}"
                        );
                        assert!(sizing.executor_memory_mib > 0, "{context}");
                        assert_eq!(
                            sizing.executor_instances,
                            sizing.executors_per_node * nodes - 1,
                            "{context}"
                        );

                        let as_explicit = ExplicitExecutors {
                            instances: sizing.executor_instances,
                            cores: sizing.executor_cores,
                            memory_mib: sizing.executor_memory_mib,
                            memory_overhead_mib: Some(sizing.executor_memory_overhead_mib),
                        };
                        let checked_sizing =
                            check_explicit(instance, nodes, deploy_mode, workload, &as_explicit)
                                .unwrap_or_else(|problems| panic!("{context}: {problems:?}"));
                        assert_eq!(
                            checked_sizing.executors_per_node, sizing.executors_per_node,
                            "{context}"
                        );
                        assert_eq!(
                            checked_sizing.default_parallelism, sizing.default_parallelism,
                            "{context}"
                        );

                        if workload == Workload::Jvm {
                            // Leaving the overhead to Spark's default rule also fits.
                            let spark_default = ExplicitExecutors {
                                memory_overhead_mib: None,
                                ..as_explicit
                            };
                            check_explicit(instance, nodes, deploy_mode, workload, &spark_default)
                                .unwrap_or_else(|problems| panic!("{context}: {problems:?}"));
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
