//! Spark executor sizing for EMR core/task nodes.
//!
//! Everything is sized from the memory YARN may hand out on a node
//! (`yarn.nodemanager.resource.memory-mb`, see [`catalog`]), never from the instance's RAM: the
//! AWS blog formula that starts from RAM asks for containers YARN cannot grant (for example one
//! 31744 MiB executor on an m5.2xlarge whose YARN memory is 24576 MiB).
//!
//! `nodes` always means the core + task nodes, the ones running a YARN NodeManager; the primary
//! node runs no executors.
//!
//! The default (`executors: auto`) layout fills the worker nodes: executor cores are chosen so
//! whole executors tile each node's vCPUs, and the node's YARN memory is split between them.
//! The Spark driver (deploy mode cluster) or the YARN ApplicationMaster (deploy mode client)
//! takes a small slice — one vCPU and one vCPU's share of the memory — on ONE node, beside
//! that node's executors; it no longer takes an executor-sized slot. The driver of emrship's
//! own jobs only coordinates (lists the inputs, then commits what the reduce tasks staged), so
//! one core is what it uses; a bigger driver (user applications) is a [`DriverRequest`].

pub mod catalog;
pub mod memory;

pub use catalog::{Arch, InstanceType};

use std::fmt;

/// Spark's minimum executor memory overhead (`spark.executor.minMemoryOverhead`), MiB.
pub const MIN_MEMORY_OVERHEAD_MIB: u64 = 384;
/// YARN rounds every container request up to a multiple of
/// `yarn.scheduler.minimum-allocation-mb`: 1 MiB in the current EMR task-configuration table,
/// 32 MiB in its 2022 copy (emr-facts 1.1). Auto-sized containers are whole multiples of 32 MiB,
/// so YARN grants exactly what was planned under both, and a node never holds one container
/// fewer than the arithmetic says.
pub const YARN_ALLOCATION_INCREMENT_MIB: u64 = 32;
/// Threads per Spark task (`spark.task.cpus`), rendered into the step and spark-defaults. Each
/// map/reduce task of the spark engine runs one `emrship-job` process, and the driver template
/// passes it `--threads <spark.task.cpus>`; an executor with `executor_cores` cores runs
/// `executor_cores / spark.task.cpus` tasks at once. So the threads of the processes in one
/// executor add up to exactly the cores YARN granted it: none idle, none oversubscribed.
///
/// One thread per task, rather than one task per executor with `executor_cores` threads: the
/// shuffle has two buckets per executor core, so every core has a reduce task in every wave;
/// a retried or speculative attempt repeats one core's share of the work, not an executor's;
/// and each process holds one bucket's tables, which bounds its memory.
pub const TASK_CPUS: u32 = 1;
/// Executor cores are at most 5 (the AWS EMR memory guidance: more concurrent tasks per
/// executor stop adding I/O throughput and enlarge each JVM's heap and GC pauses).
const MAX_AUTO_EXECUTOR_CORES: u32 = 5;
/// What the default layout must keep in executors, of the worker nodes' vCPUs and YARN memory
/// (numerator, denominator): issue 12's utilization targets. Among the layouts that reach both,
/// the one with the largest executors wins.
const MIN_VCPU_SHARE: (u64, u64) = (80, 100);
const MIN_MEMORY_SHARE: (u64, u64) = (85, 100);
/// The smallest auto-sized executor container: the native workload's minimum heap plus Spark's
/// minimum overhead (the smallest catalog node, c6g.xlarge, has exactly this per vCPU).
const MIN_AUTO_CONTAINER_MIB: u64 = NATIVE_HEAP_MIN_MIB + MIN_MEMORY_OVERHEAD_MIB;
/// Native workload heap bounds: the JVM only schedules tasks and pipes bytes to the Rust child,
/// so a small heap is enough, but not so small that Spark's own bookkeeping runs out.
const NATIVE_HEAP_MIN_MIB: u64 = 1024;
const NATIVE_HEAP_MAX_MIB: u64 = 4096;
/// The client-mode ApplicationMaster's container: Spark's defaults `spark.yarn.am.memory` 512m
/// plus the minimum overhead of 384 MiB, and `spark.yarn.am.cores` 1.
const CLIENT_AM_CONTAINER_MIB: u64 = 512 + MIN_MEMORY_OVERHEAD_MIB;
const CLIENT_AM_CORES: u32 = 1;
/// The default cluster-mode driver's cores: it lists inputs and commits staged results, one
/// process at a time, so one core is what it uses.
const DEFAULT_DRIVER_CORES: u32 = 1;

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

/// A driver bigger (or smaller) than the default, e.g. for a user application that collects
/// results on the driver. Every `None` keeps the default: for `executors: auto` 1 core and one
/// vCPU's share of a node's YARN memory; for explicit executors the executors' shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverRequest {
    pub cores: Option<u32>,
    /// `spark.driver.memory` (the JVM heap).
    pub memory_mib: Option<u64>,
    /// `spark.driver.memoryOverhead`; `None`: [`memory_overhead_mib`] of the memory.
    pub memory_overhead_mib: Option<u64>,
}

impl DriverRequest {
    fn is_default(&self) -> bool {
        *self == DriverRequest::default()
    }
}

/// Which process holds the slice of one worker node kept beside the executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SliceHolder {
    /// Deploy mode cluster: the Spark driver itself, in a YARN container.
    Driver,
    /// Deploy mode client: the YARN ApplicationMaster (the driver runs on the primary node).
    ApplicationMaster,
}

/// The YARN container the driver (or ApplicationMaster) takes on one worker node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DriverSlice {
    pub holder: SliceHolder,
    pub cores: u32,
    /// The whole container: heap + overhead.
    pub memory_mib: u64,
}

/// How much of the worker nodes the executors hold. Serialized with the two percentages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utilization {
    /// vCPUs of all worker nodes.
    pub worker_vcpu: u64,
    /// Executor cores of all executors (more than `worker_vcpu` when explicit executors ask for
    /// more cores than the nodes have).
    pub executor_vcpu: u64,
    /// YARN memory of all worker nodes.
    pub worker_memory_mib: u64,
    /// Containers (heap + overhead) of all executors.
    pub executor_memory_mib: u64,
    /// What the driver (or ApplicationMaster) takes, on one node.
    pub driver_vcpu: u64,
    pub driver_memory_mib: u64,
}

impl Utilization {
    pub fn vcpu_percent(&self) -> f64 {
        percent(self.executor_vcpu, self.worker_vcpu)
    }

    pub fn memory_percent(&self) -> f64 {
        percent(self.executor_memory_mib, self.worker_memory_mib)
    }

    /// One line for `emrship size` / `plan`.
    pub fn summary(&self) -> String {
        format!(
            "utilization: executors hold {} of {} worker vCPUs ({:.1}%) and {} of {} MiB of \
             YARN memory ({:.1}%); the driver takes {} vCPU and {} MiB on one node",
            self.executor_vcpu,
            self.worker_vcpu,
            self.vcpu_percent(),
            self.executor_memory_mib,
            self.worker_memory_mib,
            self.memory_percent(),
            self.driver_vcpu,
            self.driver_memory_mib
        )
    }
}

impl serde::Serialize for Utilization {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // One decimal, as printed: a plan's JSON should not change with float noise.
        let rounded = |value: f64| (value * 10.0).round() / 10.0;
        let mut s = serializer.serialize_struct("Utilization", 8)?;
        s.serialize_field("vcpu_percent", &rounded(self.vcpu_percent()))?;
        s.serialize_field("memory_percent", &rounded(self.memory_percent()))?;
        s.serialize_field("worker_vcpu", &self.worker_vcpu)?;
        s.serialize_field("executor_vcpu", &self.executor_vcpu)?;
        s.serialize_field("worker_memory_mib", &self.worker_memory_mib)?;
        s.serialize_field("executor_memory_mib", &self.executor_memory_mib)?;
        s.serialize_field("driver_vcpu", &self.driver_vcpu)?;
        s.serialize_field("driver_memory_mib", &self.driver_memory_mib)?;
        s.end()
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
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
    /// How many executor containers a node without the driver holds.
    pub executors_per_node: u32,
    /// How many fit on the node that also holds the driver (or ApplicationMaster).
    pub executors_on_driver_node: u32,
    /// `spark.executor.instances`.
    pub executor_instances: u32,
    /// `spark.task.cpus`: the threads each task's `emrship-job` process uses ([`TASK_CPUS`]).
    pub task_cpus: u32,
    pub driver_cores: u32,
    pub driver_memory_mib: u64,
    pub driver_memory_overhead_mib: u64,
    /// The container kept for the driver (or ApplicationMaster) on one worker node.
    pub driver_slice: DriverSlice,
    /// `spark.default.parallelism`: two tasks per executor core.
    pub default_parallelism: u32,
    pub utilization: Utilization,
    /// Human-readable steps, one per line, e.g.
    /// `executors per node = floor(16 / 5) = 3, on the driver's node 3`.
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
    /// More executors than the nodes hold, once the driver / ApplicationMaster container is in.
    DoesNotFit {
        requested: u32,
        capacity: u32,
        per_node: u32,
        nodes: u32,
        /// Executor containers the driver's (or ApplicationMaster's) node holds fewer than the
        /// others because of it.
        displaced_by_driver: u32,
    },
    /// A requested driver container that no worker node can hold.
    DriverTooLarge {
        cores: u32,
        memory_mib: u64,
        vcpu: u32,
        yarn_memory_mib: u64,
        instance_type: &'static str,
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
                     vCPU; set executors.cores to at most {vcpu} or pick a larger instance type"
                )
            }
            SizingProblem::DoesNotFit {
                requested,
                capacity,
                per_node,
                nodes,
                displaced_by_driver,
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
                let slots = u64::from(per_node) * u64::from(nodes);
                write!(
                    f,
                    "{requested} {executor_word} requested, but only {capacity} fit: {nodes} \
                     node(s) × {per_node} executor container(s) per node = {slots} slot(s)"
                )?;
                match displaced_by_driver {
                    0 => {}
                    1 => write!(
                        f,
                        ", minus 1 kept for the Spark driver (deploy mode cluster) or the YARN \
                         ApplicationMaster (deploy mode client)"
                    )?,
                    n => write!(
                        f,
                        ", minus {n} that the Spark driver's (or YARN ApplicationMaster's) \
                         container displaces on its node"
                    )?,
                }
                let nodes_needed = (u64::from(requested) + u64::from(displaced_by_driver))
                    .div_ceil(u64::from(per_node));
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
            SizingProblem::DriverTooLarge {
                cores,
                memory_mib,
                vcpu,
                yarn_memory_mib,
                instance_type,
            } => write!(
                f,
                "the driver container asks for {cores} core(s) and {memory_mib} MiB (driver \
                 memory + overhead), but a {instance_type} node has {vcpu} vCPU and gives YARN \
                 {yarn_memory_mib} MiB; make the driver smaller or pick a larger instance type"
            ),
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

/// The driver as rendered (`spark.driver.*`) and the slice it (or the ApplicationMaster) takes
/// on one worker node.
struct Driver {
    cores: u32,
    memory_mib: u64,
    overhead_mib: u64,
    slice: DriverSlice,
}

/// The default driver for `executors: auto`, or the requested one: 1 core and one vCPU's share
/// of the node's YARN memory, split into heap and overhead like an executor container of the
/// workload (a native driver's overhead holds the `emrship-job` list-inputs / finalize child
/// processes and the Python driver).
fn auto_driver(
    instance: &InstanceType,
    deploy_mode: DeployMode,
    workload: Workload,
    request: &DriverRequest,
    arithmetic: &mut Vec<String>,
) -> Driver {
    let yarn_memory_mib = u64::from(instance.yarn_memory_mib);
    let vcpu = instance.vcpu;
    let cores = request.cores.unwrap_or(DEFAULT_DRIVER_CORES);
    let (memory_mib, overhead_mib) = match request.memory_mib {
        Some(memory_mib) => {
            let overhead_mib = request
                .memory_overhead_mib
                .unwrap_or_else(|| memory_overhead_mib(memory_mib, workload));
            arithmetic.push(format!(
                "driver = {cores} core(s), {memory_mib} MiB + {overhead_mib} MiB overhead \
                 (requested)"
            ));
            (memory_mib, overhead_mib)
        }
        None => {
            let share_mib = round_down_to_increment(yarn_memory_mib / u64::from(vcpu.max(1)));
            arithmetic.push(format!(
                "driver container = one vCPU's share of YARN memory = floor({yarn_memory_mib} / \
                 {vcpu}) rounded down to {YARN_ALLOCATION_INCREMENT_MIB} MiB = {share_mib} MiB \
                 (emrship's driver only lists inputs and commits staged results)"
            ));
            let mut split = Vec::new();
            let (memory_mib, overhead_mib) = split_container(share_mib, workload, &mut split);
            arithmetic.extend(
                split
                    .into_iter()
                    .map(|line| line.replace("executor memory", "driver memory")),
            );
            (memory_mib, overhead_mib)
        }
    };
    let slice = match deploy_mode {
        DeployMode::Cluster => DriverSlice {
            holder: SliceHolder::Driver,
            cores,
            memory_mib: memory_mib.saturating_add(overhead_mib),
        },
        DeployMode::Client => DriverSlice {
            holder: SliceHolder::ApplicationMaster,
            cores: CLIENT_AM_CORES,
            memory_mib: CLIENT_AM_CONTAINER_MIB,
        },
    };
    arithmetic.push(slice_line(&slice, yarn_memory_mib));
    Driver {
        cores,
        memory_mib,
        overhead_mib,
        slice,
    }
}

/// One candidate layout of executors over the worker nodes.
#[derive(Debug, Clone, Copy)]
struct Layout {
    cores: u32,
    per_node: u32,
    on_driver_node: u32,
    container_mib: u64,
    /// Every node's executors leave the driver's slice of memory free (so the driver fits beside
    /// a full set of executors wherever YARN places it).
    leaves_room: bool,
    instances: u64,
}

impl Layout {
    /// Executor cores and containers of all executors.
    fn totals(&self) -> (u64, u64) {
        (
            self.instances * u64::from(self.cores),
            self.instances * self.container_mib,
        )
    }

    fn meets_targets(&self, worker_vcpu: u64, worker_memory_mib: u64) -> bool {
        let (vcpu, memory) = self.totals();
        vcpu * MIN_VCPU_SHARE.1 >= worker_vcpu * MIN_VCPU_SHARE.0
            && memory * MIN_MEMORY_SHARE.1 >= worker_memory_mib * MIN_MEMORY_SHARE.0
    }

    /// The smaller of the two shares, as a fraction to compare exactly: (numerator, denominator).
    fn worst_share(&self, worker_vcpu: u64, worker_memory_mib: u64) -> (u128, u128) {
        let (vcpu, memory) = self.totals();
        let (a, b) = (
            (u128::from(vcpu), u128::from(worker_vcpu)),
            (u128::from(memory), u128::from(worker_memory_mib)),
        );
        if a.0 * b.1 <= b.0 * a.1 {
            a
        } else {
            b
        }
    }
}

fn share_is_greater(a: (u128, u128), b: (u128, u128)) -> bool {
    a.0 * b.1 > b.0 * a.1
}

/// The layout with `cores` per executor: `floor(vcpu / cores)` executors per node, the node's
/// YARN memory (less the driver's slice when `leaves_room`) split between them, and on the
/// driver's node as many as still fit beside the slice in both vCPUs and memory. `None` when
/// the containers would be too small to run.
fn layout(
    instance: &InstanceType,
    nodes: u32,
    cores: u32,
    slice: &DriverSlice,
    leaves_room: bool,
) -> Option<Layout> {
    let vcpu = instance.vcpu;
    let yarn_memory_mib = u64::from(instance.yarn_memory_mib);
    let per_node = vcpu / cores;
    if per_node == 0 {
        return None;
    }
    let available_mib = if leaves_room {
        yarn_memory_mib.checked_sub(slice.memory_mib)?
    } else {
        yarn_memory_mib
    };
    let container_mib = round_down_to_increment(available_mib / u64::from(per_node));
    if container_mib < MIN_AUTO_CONTAINER_MIB {
        return None;
    }
    let beside_by_cores = vcpu.checked_sub(slice.cores)? / cores;
    let beside_by_memory = yarn_memory_mib.checked_sub(slice.memory_mib)? / container_mib;
    let on_driver_node = per_node
        .min(beside_by_cores)
        .min(u32::try_from(beside_by_memory).unwrap_or(u32::MAX));
    let instances = u64::from(per_node) * u64::from(nodes - 1) + u64::from(on_driver_node);
    Some(Layout {
        cores,
        per_node,
        on_driver_node,
        container_mib,
        leaves_room,
        instances,
    })
}

fn round_down_to_increment(mib: u64) -> u64 {
    mib / YARN_ALLOCATION_INCREMENT_MIB * YARN_ALLOCATION_INCREMENT_MIB
}

/// Sizes executors to fill the worker nodes (see the module documentation), with the default
/// driver.
///
/// # Errors
/// As [`size_auto_with_driver`].
pub fn size_auto(
    instance: &'static InstanceType,
    nodes: u32,
    deploy_mode: DeployMode,
    workload: Workload,
) -> Result<ExecutorSizing, SizingProblem> {
    size_auto_with_driver(
        instance,
        nodes,
        deploy_mode,
        workload,
        &DriverRequest::default(),
    )
}

/// Sizes executors to fill the worker nodes beside a driver of the requested size.
///
/// For each executor size from 5 cores down to 1, two layouts are weighed: executors take all
/// of a node's YARN memory (the driver's node then holds one fewer), or every node's executors
/// leave the driver's slice free (the driver fits beside a full set, which pays off when the
/// cores leave a vCPU spare, e.g. 3 × 5 on 16 vCPU). The largest executors whose better layout
/// keeps at least 80% of the worker vCPUs and 85% of their YARN memory in executors win: larger
/// executors share memory between their tasks and cost fewer JVMs; smaller ones waste less
/// beside the driver. If no size reaches both, the layout with the highest smaller share wins.
///
/// # Errors
/// [`SizingProblem::NoWorkerNodes`] for 0 nodes; [`SizingProblem::DriverTooLarge`] for a
/// requested driver no node holds; [`SizingProblem::DoesNotFit`] when the nodes hold only the
/// driver's (or ApplicationMaster's) container and no executor.
pub fn size_auto_with_driver(
    instance: &'static InstanceType,
    nodes: u32,
    deploy_mode: DeployMode,
    workload: Workload,
    driver_request: &DriverRequest,
) -> Result<ExecutorSizing, SizingProblem> {
    if nodes == 0 {
        return Err(SizingProblem::NoWorkerNodes);
    }
    let vcpu = instance.vcpu;
    let yarn_memory_mib = u64::from(instance.yarn_memory_mib);
    let mut arithmetic = vec![node_line(instance, nodes)];
    let driver = auto_driver(
        instance,
        deploy_mode,
        workload,
        driver_request,
        &mut arithmetic,
    );
    if driver_request.cores == Some(0) || driver_request.memory_mib == Some(0) {
        return Err(SizingProblem::ZeroValue {
            field: zero_driver_field(driver_request),
        });
    }
    if driver.slice.cores > vcpu || driver.slice.memory_mib > yarn_memory_mib {
        return Err(SizingProblem::DriverTooLarge {
            cores: driver.slice.cores,
            memory_mib: driver.slice.memory_mib,
            vcpu,
            yarn_memory_mib,
            instance_type: instance.name,
        });
    }

    let worker_vcpu = u64::from(vcpu) * u64::from(nodes);
    let worker_memory_mib = yarn_memory_mib * u64::from(nodes);
    let mut chosen: Option<Layout> = None;
    let mut best: Option<Layout> = None;
    let mut passed_over = Vec::new();
    for cores in (1..=MAX_AUTO_EXECUTOR_CORES.min(vcpu)).rev() {
        let candidates = [false, true]
            .into_iter()
            .filter_map(|leaves_room| layout(instance, nodes, cores, &driver.slice, leaves_room))
            .filter(|candidate| candidate.instances > 0);
        let Some(better) = candidates.reduce(|a, b| {
            let (sa, sb) = (
                a.worst_share(worker_vcpu, worker_memory_mib),
                b.worst_share(worker_vcpu, worker_memory_mib),
            );
            if share_is_greater(sb, sa) {
                b
            } else {
                a
            }
        }) else {
            continue;
        };
        if better.meets_targets(worker_vcpu, worker_memory_mib) {
            chosen = Some(better);
            break;
        }
        let (executor_vcpu, executor_memory) = better.totals();
        passed_over.push(format!(
            "{cores}: {:.1}% / {:.1}%",
            percent(executor_vcpu, worker_vcpu),
            percent(executor_memory, worker_memory_mib)
        ));
        let improves = best.is_none_or(|b| {
            share_is_greater(
                better.worst_share(worker_vcpu, worker_memory_mib),
                b.worst_share(worker_vcpu, worker_memory_mib),
            )
        });
        if improves {
            best = Some(better);
        }
    }
    let passed_over = if passed_over.is_empty() {
        String::new()
    } else {
        format!(
            "; larger executors keep less (cores: vCPU / memory in executors): {}",
            passed_over.join(", ")
        )
    };
    let layout = match (chosen, best) {
        (Some(layout), _) => {
            arithmetic.push(format!(
                "executor cores = {}: the largest of {}..1 whose layout keeps at least {}% of the \
                 worker vCPUs and {}% of their YARN memory in executors{passed_over}",
                layout.cores,
                MAX_AUTO_EXECUTOR_CORES.min(vcpu),
                MIN_VCPU_SHARE.0,
                MIN_MEMORY_SHARE.0
            ));
            layout
        }
        (None, Some(layout)) => {
            arithmetic.push(format!(
                "executor cores = {}: no layout keeps {}% of the worker vCPUs and {}% of their \
                 YARN memory in executors beside the driver on {nodes} node(s), so the one that \
                 keeps the most{passed_over}",
                layout.cores, MIN_VCPU_SHARE.0, MIN_MEMORY_SHARE.0
            ));
            layout
        }
        (None, None) => {
            // Only a requested driver can leave no room on a single node.
            let per_node = vcpu;
            let beside =
                layout(instance, nodes, 1, &driver.slice, false).map_or(0, |l| l.on_driver_node);
            return Err(SizingProblem::DoesNotFit {
                requested: 1,
                capacity: 0,
                per_node,
                nodes,
                displaced_by_driver: per_node - beside,
            });
        }
    };

    let Layout {
        cores: executor_cores,
        per_node: executors_per_node,
        on_driver_node,
        container_mib,
        leaves_room,
        instances,
    } = layout;
    arithmetic.push(format!(
        "executors per node = floor({vcpu} / {executor_cores}) = {executors_per_node}; on {} \
         {on_driver_node}, beside its {} vCPU and {} MiB",
        holder_node(driver.slice.holder),
        driver.slice.cores,
        driver.slice.memory_mib
    ));
    let per_container = if leaves_room {
        format!(
            "floor(({yarn_memory_mib} - {}) / {executors_per_node})",
            driver.slice.memory_mib
        )
    } else {
        format!("floor({yarn_memory_mib} / {executors_per_node})")
    };
    arithmetic.push(format!(
        "container per executor = {per_container} rounded down to \
         {YARN_ALLOCATION_INCREMENT_MIB} MiB = {container_mib} MiB"
    ));
    let (executor_memory_mib, overhead_mib) =
        split_container(container_mib, workload, &mut arithmetic);

    let executor_instances = u32::try_from(instances).unwrap_or(u32::MAX);
    arithmetic.push(format!(
        "executor instances = {executors_per_node} × ({nodes} - 1) node(s) + {on_driver_node} \
         on {} = {executor_instances}",
        holder_node(driver.slice.holder)
    ));
    arithmetic.push(driver_line(
        deploy_mode,
        driver.cores,
        driver.memory_mib,
        driver.overhead_mib,
    ));
    arithmetic.push(tasks_line(executor_cores, workload));
    let default_parallelism = 2u32
        .saturating_mul(executor_instances)
        .saturating_mul(executor_cores);
    arithmetic.push(format!(
        "default parallelism = 2 × {executor_instances} × {executor_cores} = \
         {default_parallelism}"
    ));
    let utilization = utilization(
        instance,
        nodes,
        executor_instances,
        executor_cores,
        container_mib,
        &driver.slice,
    );
    arithmetic.push(utilization.summary());

    Ok(ExecutorSizing {
        instance_type: instance.name,
        nodes,
        yarn_memory_mib,
        vcpu,
        executor_cores,
        executor_memory_mib,
        executor_memory_overhead_mib: overhead_mib,
        executors_per_node,
        executors_on_driver_node: on_driver_node,
        executor_instances,
        task_cpus: TASK_CPUS,
        driver_cores: driver.cores,
        driver_memory_mib: driver.memory_mib,
        driver_memory_overhead_mib: driver.overhead_mib,
        driver_slice: driver.slice,
        default_parallelism,
        utilization,
        arithmetic,
    })
}

/// Checks executor settings given in the spec against the cluster and reports every problem at
/// once. The driver gets the executors' shape.
///
/// # Errors
/// As [`check_explicit_with_driver`].
pub fn check_explicit(
    instance: &'static InstanceType,
    nodes: u32,
    deploy_mode: DeployMode,
    workload: Workload,
    explicit: &ExplicitExecutors,
) -> Result<ExecutorSizing, Vec<SizingProblem>> {
    check_explicit_with_driver(
        instance,
        nodes,
        deploy_mode,
        workload,
        explicit,
        &DriverRequest::default(),
    )
}

/// Checks executor settings given in the spec against the cluster, beside a driver of the
/// requested size (default: the executors' shape, whose container then takes one executor's
/// slot), and reports every problem at once. Containers are packed by memory, as YARN's default
/// resource calculator does.
///
/// # Errors
/// Every [`SizingProblem`] found, in a stable order: no nodes, zero values, container too large,
/// too many cores, driver too large, too many executors.
pub fn check_explicit_with_driver(
    instance: &'static InstanceType,
    nodes: u32,
    deploy_mode: DeployMode,
    workload: Workload,
    explicit: &ExplicitExecutors,
    driver_request: &DriverRequest,
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

    let driver = if driver_request.is_default() {
        // The executors' shape, in the executor's slot (a client-mode ApplicationMaster is kept
        // to the same slot, as before driver requests existed).
        let holder = match deploy_mode {
            DeployMode::Cluster => SliceHolder::Driver,
            DeployMode::Client => SliceHolder::ApplicationMaster,
        };
        Driver {
            cores,
            memory_mib,
            overhead_mib,
            slice: DriverSlice {
                holder,
                cores,
                memory_mib: container_mib,
            },
        }
    } else {
        auto_driver(
            instance,
            deploy_mode,
            workload,
            driver_request,
            &mut arithmetic,
        )
    };
    if driver_request.cores == Some(0) || driver_request.memory_mib == Some(0) {
        problems.push(SizingProblem::ZeroValue {
            field: zero_driver_field(driver_request),
        });
    } else if !driver_request.is_default()
        && (driver.slice.cores > vcpu || driver.slice.memory_mib > yarn_memory_mib)
    {
        problems.push(SizingProblem::DriverTooLarge {
            cores: driver.slice.cores,
            memory_mib: driver.slice.memory_mib,
            vcpu,
            yarn_memory_mib,
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
    let on_driver_node = match yarn_memory_mib
        .saturating_sub(driver.slice.memory_mib)
        .checked_div(container_mib)
    {
        Some(fitting) => u32::try_from(fitting)
            .unwrap_or(u32::MAX)
            .min(executors_per_node),
        None => 0,
    };
    let capacity = if nodes == 0 {
        0
    } else {
        let total =
            u64::from(executors_per_node) * u64::from(nodes - 1) + u64::from(on_driver_node);
        u32::try_from(total).unwrap_or(u32::MAX)
    };
    arithmetic.push(format!(
        "capacity = {executors_per_node} × ({nodes} - 1) node(s) + {on_driver_node} on {} = \
         {capacity} ({})",
        holder_node(driver.slice.holder),
        slice_holder_text(driver.slice.holder)
    ));
    if nodes > 0 && container_mib > 0 && instances > capacity {
        problems.push(SizingProblem::DoesNotFit {
            requested: instances,
            capacity,
            per_node: executors_per_node,
            nodes,
            displaced_by_driver: executors_per_node - on_driver_node,
        });
    }

    if !problems.is_empty() {
        return Err(problems);
    }

    arithmetic.push(driver_line(
        deploy_mode,
        driver.cores,
        driver.memory_mib,
        driver.overhead_mib,
    ));
    arithmetic.push(tasks_line(cores, workload));
    let default_parallelism = 2u32.saturating_mul(instances).saturating_mul(cores);
    arithmetic.push(format!(
        "default parallelism = 2 × {instances} × {cores} = {default_parallelism}"
    ));
    let utilization = utilization(
        instance,
        nodes,
        instances,
        cores,
        container_mib,
        &driver.slice,
    );
    arithmetic.push(utilization.summary());

    Ok(ExecutorSizing {
        instance_type: instance.name,
        nodes,
        yarn_memory_mib,
        vcpu,
        executor_cores: cores,
        executor_memory_mib: memory_mib,
        executor_memory_overhead_mib: overhead_mib,
        executors_per_node,
        executors_on_driver_node: on_driver_node,
        executor_instances: instances,
        task_cpus: TASK_CPUS,
        driver_cores: driver.cores,
        driver_memory_mib: driver.memory_mib,
        driver_memory_overhead_mib: driver.overhead_mib,
        driver_slice: driver.slice,
        default_parallelism,
        utilization,
        arithmetic,
    })
}

fn zero_driver_field(request: &DriverRequest) -> &'static str {
    if request.cores == Some(0) {
        "driver.cores"
    } else {
        "driver.memory"
    }
}

fn utilization(
    instance: &InstanceType,
    nodes: u32,
    instances: u32,
    cores: u32,
    container_mib: u64,
    slice: &DriverSlice,
) -> Utilization {
    Utilization {
        worker_vcpu: u64::from(instance.vcpu) * u64::from(nodes),
        executor_vcpu: u64::from(instances) * u64::from(cores),
        worker_memory_mib: u64::from(instance.yarn_memory_mib) * u64::from(nodes),
        executor_memory_mib: u64::from(instances).saturating_mul(container_mib),
        driver_vcpu: u64::from(slice.cores),
        driver_memory_mib: slice.memory_mib,
    }
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

fn slice_holder_text(holder: SliceHolder) -> &'static str {
    match holder {
        SliceHolder::Driver => "the Spark driver, which runs in a YARN container in cluster mode",
        SliceHolder::ApplicationMaster => {
            "the YARN ApplicationMaster; in client mode the driver runs on the primary node"
        }
    }
}

fn holder_node(holder: SliceHolder) -> &'static str {
    match holder {
        SliceHolder::Driver => "the driver's node",
        SliceHolder::ApplicationMaster => "the ApplicationMaster's node",
    }
}

fn slice_line(slice: &DriverSlice, yarn_memory_mib: u64) -> String {
    let what = match slice.holder {
        SliceHolder::Driver => "the driver's container",
        SliceHolder::ApplicationMaster => {
            "the YARN ApplicationMaster's container (spark.yarn.am.memory 512m + 384 MiB \
             overhead; the driver runs on the primary node)"
        }
    };
    format!(
        "kept on one worker node for {what}: {} vCPU and {} of {yarn_memory_mib} MiB; the other \
         nodes give executors everything",
        slice.cores, slice.memory_mib
    )
}

fn driver_line(deploy_mode: DeployMode, cores: u32, memory_mib: u64, overhead_mib: u64) -> String {
    let where_ = match deploy_mode {
        DeployMode::Cluster => "in its container on a worker node",
        DeployMode::Client => "on the primary node (spark.driver.cores applies to cluster mode)",
    };
    format!("driver = {cores} core(s), {memory_mib} MiB + {overhead_mib} MiB overhead, {where_}")
}

/// How tasks use an executor's cores; for the native workload, the `emrship-job` threads.
fn tasks_line(executor_cores: u32, workload: Workload) -> String {
    let concurrent = executor_cores / TASK_CPUS;
    match workload {
        Workload::Native => format!(
            "tasks: spark.task.cpus = {TASK_CPUS}, so each executor runs {concurrent} task(s) at \
             once, each one emrship-job process with --threads {TASK_CPUS}: {} thread(s) on the \
             executor's {executor_cores} core(s)",
            concurrent * TASK_CPUS
        ),
        Workload::Jvm => format!(
            "tasks: spark.task.cpus = {TASK_CPUS}, so each executor runs {concurrent} task(s) at \
             once on its {executor_cores} core(s)"
        ),
    }
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

    /// One auto-sized layout, worked out by hand:
    /// (type, nodes, executor cores, per node, on the driver's node, container MiB, instances).
    /// The driver's slice is one vCPU and floor(YARN / vCPU) MiB rounded down to 32.
    const AUTO_VECTORS: &[(&str, u32, u32, u32, u32, u64, u32)] = &[
        // match-rate / pageview-rollup, 8 vCPU: 2 × 4 cores per node; the driver's node keeps
        // 1 executor beside the 1-vCPU / 7168 MiB driver ((8 - 1) / 4 = 1). 57344 / 2 = 28672.
        // 7 × 4 = 28 of 32 vCPU, 7 × 28672 = 200704 of 229376 MiB: 87.5% / 87.5%.
        ("r5.2xlarge", 4, 4, 2, 1, 28672, 7),
        // match-rate + dev overlay, 4 vCPU on 2 nodes: 4- to 2-core executors keep at most 75%
        // beside the driver, so 1-core ones: 4 per node, 3 beside the driver; 12288 / 4 = 3072.
        ("m5.xlarge", 2, 1, 4, 3, 3072, 7),
        // match-rate + prod overlay, 16 vCPU: 3 × 5 cores leave a vCPU spare, so every node
        // leaves the driver's 7680 MiB free: (122880 - 7680) / 3 = 38400; 30 × 5 = 150 of 160.
        ("r5.4xlarge", 10, 5, 3, 3, 38400, 30),
        // 4 vCPU on 4 nodes: 2 × 2 cores, 1 beside the driver; 6144 / 2 = 3072. 14 of 16 vCPU.
        ("c5.xlarge", 4, 2, 2, 1, 3072, 7),
        // 4 vCPU Graviton, the smallest YARN share in the catalog: 5632 / 4 = 1408 per vCPU.
        ("c6g.xlarge", 2, 1, 4, 3, 1408, 7),
        // 8 vCPU: 24576 / 2 = 12288.
        ("m5.2xlarge", 4, 4, 2, 1, 12288, 7),
        // 16 vCPU (seed 003's 6 × m5.4xlarge): driver 57344 / 16 = 3584;
        // (57344 - 3584) / 3 = 17920; 18 × 5 = 90 of 96 vCPU.
        ("m5.4xlarge", 6, 5, 3, 3, 17920, 18),
        // 32 vCPU: driver 122880 / 32 = 3840; (122880 - 3840) / 6 = 19840.
        ("m5.8xlarge", 4, 5, 6, 6, 19840, 24),
        // 64 vCPU Graviton: driver 241664 / 64 = 3776; (241664 - 3776) / 12 = 19824, rounded
        // down to 32: 19808. 48 × 5 = 240 of 256 vCPU.
        ("m6g.16xlarge", 4, 5, 12, 12, 19808, 48),
    ];

    #[test]
    fn auto_matches_the_worked_vectors() {
        for &(name, nodes, cores, per_node, on_driver, container, instances) in AUTO_VECTORS {
            for workload in [Workload::Native, Workload::Jvm] {
                let context = format!("{name} × {nodes} {workload:?}");
                let sizing = size_auto(instance(name), nodes, DeployMode::Cluster, workload)
                    .unwrap_or_else(|problem| panic!("{context}: {problem}"));
                assert_eq!(sizing.executor_cores, cores, "{context} cores");
                assert_eq!(sizing.executors_per_node, per_node, "{context} per node");
                assert_eq!(
                    sizing.executors_on_driver_node, on_driver,
                    "{context} on the driver's node"
                );
                assert_eq!(
                    sizing.executor_memory_mib + sizing.executor_memory_overhead_mib,
                    container,
                    "{context} container"
                );
                assert_eq!(sizing.executor_instances, instances, "{context} instances");
                assert_eq!(
                    sizing.default_parallelism,
                    2 * instances * cores,
                    "{context} parallelism"
                );
                let vcpu = u64::from(instance(name).vcpu);
                let yarn = u64::from(instance(name).yarn_memory_mib);
                let share = round_down_to_increment(yarn / vcpu);
                assert_eq!(sizing.driver_cores, 1, "{context}");
                assert_eq!(
                    sizing.driver_slice,
                    DriverSlice {
                        holder: SliceHolder::Driver,
                        cores: 1,
                        memory_mib: share,
                    },
                    "{context}"
                );
                assert_eq!(
                    sizing.driver_memory_mib + sizing.driver_memory_overhead_mib,
                    share,
                    "{context}"
                );
                assert_eq!(
                    sizing.utilization,
                    Utilization {
                        worker_vcpu: vcpu * u64::from(nodes),
                        executor_vcpu: u64::from(instances * cores),
                        worker_memory_mib: yarn * u64::from(nodes),
                        executor_memory_mib: u64::from(instances) * container,
                        driver_vcpu: 1,
                        driver_memory_mib: share,
                    },
                    "{context}"
                );
                assert!(sizing.utilization.vcpu_percent() >= 80.0, "{context}");
                assert!(sizing.utilization.memory_percent() >= 85.0, "{context}");
            }
        }
    }

    #[test]
    fn the_issue_12_cluster_no_longer_pays_for_idle_cores() {
        // 4 × r5.2xlarge used to run 3 × 5 cores (47% of the vCPUs, 75% of YARN memory).
        let sizing = size_auto(
            instance("r5.2xlarge"),
            4,
            DeployMode::Cluster,
            Workload::Native,
        )
        .unwrap();
        assert_eq!(sizing.utilization.executor_vcpu, 28);
        assert_eq!(format!("{:.1}", sizing.utilization.vcpu_percent()), "87.5");
        assert_eq!(
            format!("{:.1}", sizing.utilization.memory_percent()),
            "87.5"
        );
        // The native split: a small heap, the rest holds the emrship-job processes.
        assert_eq!(sizing.executor_memory_mib, 3584);
        assert_eq!(sizing.executor_memory_overhead_mib, 28672 - 3584);
        assert_eq!(
            (sizing.driver_memory_mib, sizing.driver_memory_overhead_mib),
            (1024, 6144)
        );
        assert_eq!(sizing.task_cpus, 1);
        let json = serde_json::to_value(&sizing).unwrap();
        assert_eq!(json["utilization"]["vcpu_percent"], 87.5);
        assert_eq!(json["utilization"]["memory_percent"], 87.5);
        assert_eq!(json["utilization"]["driver_memory_mib"], 7168);
        assert_eq!(json["driver_slice"]["holder"], "driver");
        assert_eq!(json["executors_on_driver_node"], 1);
    }

    /// Every catalog type of 4, 8, 16, 32 and 64 vCPU, on 2 to 40 nodes, both workloads and
    /// deploy modes: at least 80% of the worker vCPUs and 85% of their YARN memory in executors.
    #[test]
    fn auto_meets_the_utilization_targets_for_every_vcpu_class() {
        let mut classes_seen = std::collections::BTreeSet::new();
        for instance in catalog::all()
            .iter()
            .filter(|t| [4, 8, 16, 32, 64].contains(&t.vcpu))
        {
            classes_seen.insert(instance.vcpu);
            for nodes in 2..=40 {
                for workload in [Workload::Jvm, Workload::Native] {
                    for deploy_mode in [DeployMode::Cluster, DeployMode::Client] {
                        let context =
                            format!("{} × {nodes} {workload:?} {deploy_mode:?}", instance.name);
                        let sizing = size_auto(instance, nodes, deploy_mode, workload)
                            .unwrap_or_else(|problem| panic!("{context}: {problem}"));
                        let used = sizing.utilization;
                        assert!(
                            used.executor_vcpu * 100 >= used.worker_vcpu * 80,
                            "{context}: {}",
                            used.summary()
                        );
                        assert!(
                            used.executor_memory_mib * 100 >= used.worker_memory_mib * 85,
                            "{context}: {}",
                            used.summary()
                        );
                    }
                }
            }
        }
        assert_eq!(
            classes_seen.into_iter().collect::<Vec<_>>(),
            vec![4, 8, 16, 32, 64]
        );
    }

    #[test]
    fn larger_executors_win_when_they_meet_the_targets() {
        // 4 vCPU: 2 nodes need 1-core executors, 4 nodes reach the targets with 2 cores, and
        // from 7 nodes one lost 4-core executor is at most 1/7 of the cluster.
        let cores_on = |nodes| {
            size_auto(
                instance("m5.xlarge"),
                nodes,
                DeployMode::Cluster,
                Workload::Native,
            )
            .unwrap()
            .executor_cores
        };
        assert_eq!(
            [2, 3, 4, 6, 7, 20].map(cores_on),
            [1, 1, 2, 2, 4, 4],
            "executor cores on 2, 3, 4, 6, 7, 20 × m5.xlarge"
        );
        let passed_over = size_auto(
            instance("m5.xlarge"),
            2,
            DeployMode::Cluster,
            Workload::Native,
        )
        .unwrap()
        .arithmetic
        .into_iter()
        .find(|line| line.starts_with("executor cores = 1"))
        .unwrap();
        assert!(
            passed_over.contains("4: 50.0% / 50.0%, 3: 75.0% / 75.0%, 2: 75.0% / 75.0%"),
            "{passed_over}"
        );
    }

    #[test]
    fn one_node_below_the_targets_takes_the_best_layout_and_says_so() {
        // One 4-vCPU node: the driver takes a vCPU, so at most 3 of 4 can run executors.
        let sizing = size_auto(
            instance("m5.xlarge"),
            1,
            DeployMode::Cluster,
            Workload::Native,
        )
        .unwrap();
        assert_eq!(sizing.utilization.executor_vcpu, 3);
        assert_eq!(sizing.executor_instances, 1);
        assert_eq!(sizing.executor_cores, 3, "ties go to the larger executors");
        assert!(
            sizing
                .arithmetic
                .iter()
                .any(|line| line.contains("no layout keeps 80%")),
            "{:#?}",
            sizing.arithmetic
        );
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
            "driver container = one vCPU's share of YARN memory = floor(57344 / 16) rounded down \
             to 32 MiB = 3584 MiB (emrship's driver only lists inputs and commits staged results)",
            "kept on one worker node for the driver's container: 1 vCPU and 3584 of 57344 MiB; \
             the other nodes give executors everything",
            "executor cores = 5: the largest of 5..1 whose layout keeps at least 80% of the \
             worker vCPUs and 85% of their YARN memory in executors",
            "executors per node = floor(16 / 5) = 3; on the driver's node 3, beside its 1 vCPU \
             and 3584 MiB",
            "container per executor = floor((57344 - 3584) / 3) rounded down to 32 MiB = 17920 \
             MiB",
            "executor memory = floor(17920 / 1.1) = 16290 MiB, memory overhead = 17920 - 16290 = \
             1630 MiB",
            "executor instances = 3 × (6 - 1) node(s) + 3 on the driver's node = 18",
            "tasks: spark.task.cpus = 1, so each executor runs 5 task(s) at once on its 5 core(s)",
            "default parallelism = 2 × 18 × 5 = 180",
            "utilization: executors hold 90 of 96 worker vCPUs (93.8%) and 322560 of 344064 MiB \
             of YARN memory (93.8%); the driver takes 1 vCPU and 3584 MiB on one node",
        ];
        for line in expected {
            assert!(
                sizing.arithmetic.iter().any(|have| have == line),
                "{line:?} not in {:#?}",
                sizing.arithmetic
            );
        }

        let client =
            size_auto(instance("m5.4xlarge"), 6, DeployMode::Client, Workload::Jvm).unwrap();
        assert_eq!(
            client.driver_slice,
            DriverSlice {
                holder: SliceHolder::ApplicationMaster,
                cores: 1,
                memory_mib: 896,
            }
        );
        assert!(client
            .arithmetic
            .iter()
            .any(|line| line.contains("ApplicationMaster's container")));
        assert_eq!(client.executor_instances, 18);
        assert_eq!(client.utilization.driver_memory_mib, 896);
    }

    #[test]
    fn auto_on_one_node_puts_the_driver_beside_the_executors() {
        // One m5.2xlarge: 1-core executors, 7 of them beside the 1-core driver.
        for deploy_mode in [DeployMode::Cluster, DeployMode::Client] {
            let sizing = size_auto(instance("m5.2xlarge"), 1, deploy_mode, Workload::Jvm).unwrap();
            assert_eq!(sizing.executor_cores, 1, "{deploy_mode:?}");
            assert_eq!(sizing.executor_instances, 7, "{deploy_mode:?}");
            assert_eq!(sizing.executors_on_driver_node, 7, "{deploy_mode:?}");
        }
    }

    #[test]
    fn auto_native_keeps_a_small_heap_and_a_large_overhead() {
        // (type, nodes, container MiB, heap MiB)
        let cases: &[(&str, u32, u64, u64)] = &[
            // 17920 / 8 = 2240.
            ("m5.4xlarge", 4, 17920, 2240),
            // 6144 / 8 = 768, raised to 1024.
            ("m5.xlarge", 4, 6144, 1024),
            // 1408 / 8 = 176, raised to 1024 (1408 - 384 allows it).
            ("c6g.xlarge", 2, 1408, 1024),
            // 38400 / 8 = 4800, capped at 4096.
            ("r5.4xlarge", 4, 38400, 4096),
        ];
        for &(name, nodes, container, heap) in cases {
            let sizing =
                size_auto(instance(name), nodes, DeployMode::Cluster, Workload::Native).unwrap();
            assert_eq!(sizing.executor_memory_mib, heap, "{name}");
            assert_eq!(
                sizing.executor_memory_overhead_mib,
                container - heap,
                "{name}"
            );
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
    fn tasks_use_one_thread_each_and_fill_the_executor_cores() {
        for &(name, nodes, ..) in AUTO_VECTORS {
            let sizing =
                size_auto(instance(name), nodes, DeployMode::Cluster, Workload::Native).unwrap();
            assert_eq!(sizing.task_cpus, 1, "{name}");
            assert_eq!(sizing.executor_cores % sizing.task_cpus, 0, "{name}");
            let threads_line = sizing
                .arithmetic
                .iter()
                .find(|line| line.starts_with("tasks:"))
                .unwrap();
            let cores = sizing.executor_cores;
            assert!(
                threads_line.contains(&format!(
                    "runs {cores} task(s) at once, each one emrship-job process with --threads 1: \
                     {cores} thread(s) on the executor's {cores} core(s)"
                )),
                "{threads_line}"
            );
        }
    }

    #[test]
    fn a_requested_driver_gets_its_slice_and_the_executors_make_room() {
        // A user application's 8 GiB, 2-core driver on 4 × r5.2xlarge.
        let request = DriverRequest {
            cores: Some(2),
            memory_mib: Some(8192),
            memory_overhead_mib: None,
        };
        let sizing = size_auto_with_driver(
            instance("r5.2xlarge"),
            4,
            DeployMode::Cluster,
            Workload::Jvm,
            &request,
        )
        .unwrap();
        assert_eq!(sizing.driver_cores, 2);
        assert_eq!(sizing.driver_memory_mib, 8192);
        assert_eq!(sizing.driver_memory_overhead_mib, 820);
        assert_eq!(sizing.driver_slice.memory_mib, 9012);
        assert_eq!(sizing.driver_slice.cores, 2);
        // 2 × 4 cores per node, 1 beside the driver: (8 - 2) / 4 = 1.
        assert_eq!(sizing.executor_instances, 7);
        assert!(sizing
            .arithmetic
            .iter()
            .any(|line| line.ends_with("(requested)")));

        // In client mode the driver runs on the primary node: only the ApplicationMaster's
        // container is kept on a worker.
        let client = size_auto_with_driver(
            instance("r5.2xlarge"),
            4,
            DeployMode::Client,
            Workload::Jvm,
            &request,
        )
        .unwrap();
        assert_eq!(client.driver_memory_mib, 8192);
        assert_eq!(client.driver_slice.memory_mib, 896);

        // A driver no node holds.
        let too_large = DriverRequest {
            cores: Some(1),
            memory_mib: Some(64 * 1024),
            memory_overhead_mib: None,
        };
        let problem = size_auto_with_driver(
            instance("r5.2xlarge"),
            4,
            DeployMode::Cluster,
            Workload::Jvm,
            &too_large,
        )
        .unwrap_err();
        assert_eq!(
            problem,
            SizingProblem::DriverTooLarge {
                cores: 1,
                memory_mib: 65536 + 6554,
                vcpu: 8,
                yarn_memory_mib: 57344,
                instance_type: "r5.2xlarge",
            }
        );
        assert!(problem.to_string().contains("make the driver smaller"));
    }

    #[test]
    fn a_zero_driver_request_is_a_zero_value() {
        let zero_cores = DriverRequest {
            cores: Some(0),
            ..DriverRequest::default()
        };
        assert_eq!(
            size_auto_with_driver(
                instance("m5.xlarge"),
                2,
                DeployMode::Cluster,
                Workload::Jvm,
                &zero_cores,
            ),
            Err(SizingProblem::ZeroValue {
                field: "driver.cores"
            })
        );
        let zero_memory = DriverRequest {
            memory_mib: Some(0),
            ..DriverRequest::default()
        };
        assert_eq!(
            check_explicit_with_driver(
                instance("m5.xlarge"),
                2,
                DeployMode::Cluster,
                Workload::Jvm,
                &explicit(1, 1, 1024),
                &zero_memory,
            ),
            Err(vec![SizingProblem::ZeroValue {
                field: "driver.memory"
            }])
        );
    }

    #[test]
    fn explicit_with_a_requested_driver_counts_what_it_displaces() {
        // 6 × m5.4xlarge, 12760 MiB containers, 4 per node. A 1 GiB driver (1408 MiB with
        // overhead) fits beside 3 of them: 57344 - 1408 = 55936, / 12760 = 4.38 → 4.
        let small_driver = DriverRequest {
            cores: Some(1),
            memory_mib: Some(1024),
            memory_overhead_mib: None,
        };
        let sizing = check_explicit_with_driver(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Jvm,
            &explicit(24, 6, 11600),
            &small_driver,
        )
        .unwrap();
        assert_eq!(sizing.executors_on_driver_node, 4);
        assert_eq!(sizing.executor_instances, 24);
        // 24 × 6 = 144 cores on 96 vCPU: shown, since YARN packs by memory here.
        assert_eq!(sizing.utilization.executor_vcpu, 144);

        // A 30 GiB driver displaces 3 of the 4.
        let large_driver = DriverRequest {
            cores: Some(4),
            memory_mib: Some(30 * 1024),
            memory_overhead_mib: None,
        };
        let problems = check_explicit_with_driver(
            instance("m5.4xlarge"),
            6,
            DeployMode::Cluster,
            Workload::Jvm,
            &explicit(24, 6, 11600),
            &large_driver,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            vec![SizingProblem::DoesNotFit {
                requested: 24,
                capacity: 21,
                per_node: 4,
                nodes: 6,
                displaced_by_driver: 3,
            }]
        );
        let message = problems[0].to_string();
        assert!(
            message.contains("minus 3 that the Spark driver's"),
            "{message}"
        );
        assert!(message.contains("at least 7 nodes"), "{message}");
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
                displaced_by_driver: 1,
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
    fn auto_with_no_nodes() {
        assert_eq!(
            size_auto(instance("m5.xlarge"), 0, DeployMode::Cluster, Workload::Jvm),
            Err(SizingProblem::NoWorkerNodes)
        );
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
                    displaced_by_driver: 0,
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
            messages[1].contains("at most 4 or pick a larger instance type"),
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
            displaced_by_driver: 1,
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
            displaced_by_driver: 0,
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

    /// Over the whole catalog: auto sizing is consistent with itself, fits every node in vCPUs
    /// and memory (the driver's node with the driver), and passes the explicit check.
    #[test]
    fn auto_sizing_always_passes_its_own_explicit_check() {
        let mut checked = 0;
        for instance in catalog::all() {
            let vcpu = u64::from(instance.vcpu);
            let yarn = u64::from(instance.yarn_memory_mib);
            for nodes in 1..=20 {
                for workload in [Workload::Jvm, Workload::Native] {
                    for deploy_mode in [DeployMode::Cluster, DeployMode::Client] {
                        let context =
                            format!("{} × {nodes} {workload:?} {deploy_mode:?}", instance.name);
                        let sizing = size_auto(instance, nodes, deploy_mode, workload)
                            .unwrap_or_else(|problem| panic!("{context}: {problem}"));
                        let container =
                            sizing.executor_memory_mib + sizing.executor_memory_overhead_mib;
                        let cores = u64::from(sizing.executor_cores);
                        let per_node = u64::from(sizing.executors_per_node);
                        let beside = u64::from(sizing.executors_on_driver_node);
                        let slice = sizing.driver_slice;
                        assert_eq!(container % YARN_ALLOCATION_INCREMENT_MIB, 0, "{context}");
                        assert!(per_node * container <= yarn, "{context}");
                        assert!(per_node * cores <= vcpu, "{context}");
                        assert!(beside <= per_node, "{context}");
                        assert!(
                            beside * container + slice.memory_mib <= yarn,
                            "{context}: the driver's node"
                        );
                        assert!(
                            beside * cores + u64::from(slice.cores) <= vcpu,
                            "{context}: the driver's node"
                        );
                        assert!(
                            sizing.executor_cores <= MAX_AUTO_EXECUTOR_CORES,
                            "{context}"
                        );
                        assert!(
                            sizing.executor_memory_overhead_mib >= MIN_MEMORY_OVERHEAD_MIB,
                            "{context}"
                        );
                        assert!(sizing.executor_memory_mib > 0, "{context}");
                        assert!(sizing.driver_memory_mib > 0, "{context}");
                        assert_eq!(
                            u64::from(sizing.executor_instances),
                            per_node * u64::from(nodes - 1) + beside,
                            "{context}"
                        );
                        assert!(sizing.executor_instances > 0, "{context}");
                        assert_eq!(
                            sizing.utilization.executor_vcpu,
                            u64::from(sizing.executor_instances) * cores,
                            "{context}"
                        );
                        assert_eq!(
                            sizing.utilization.executor_memory_mib,
                            u64::from(sizing.executor_instances) * container,
                            "{context}"
                        );

                        // The same executors and driver, given explicitly, pass the check.
                        let as_explicit = ExplicitExecutors {
                            instances: sizing.executor_instances,
                            cores: sizing.executor_cores,
                            memory_mib: sizing.executor_memory_mib,
                            memory_overhead_mib: Some(sizing.executor_memory_overhead_mib),
                        };
                        let driver = DriverRequest {
                            cores: Some(sizing.driver_cores),
                            memory_mib: Some(sizing.driver_memory_mib),
                            memory_overhead_mib: Some(sizing.driver_memory_overhead_mib),
                        };
                        let checked_sizing = check_explicit_with_driver(
                            instance,
                            nodes,
                            deploy_mode,
                            workload,
                            &as_explicit,
                            &driver,
                        )
                        .unwrap_or_else(|problems| panic!("{context}: {problems:?}"));
                        assert_eq!(checked_sizing.driver_slice, slice, "{context}");
                        assert_eq!(
                            checked_sizing.default_parallelism, sizing.default_parallelism,
                            "{context}"
                        );
                        assert_eq!(checked_sizing.utilization, sizing.utilization, "{context}");

                        if workload == Workload::Jvm {
                            // Leaving the overheads to Spark's default rule also fits.
                            let spark_default = ExplicitExecutors {
                                memory_overhead_mib: None,
                                ..as_explicit
                            };
                            let driver = DriverRequest {
                                memory_overhead_mib: None,
                                ..driver
                            };
                            check_explicit_with_driver(
                                instance,
                                nodes,
                                deploy_mode,
                                workload,
                                &spark_default,
                                &driver,
                            )
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
