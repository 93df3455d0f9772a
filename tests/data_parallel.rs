//! Data-parallel steps without MPI: ranks as threads of one process (an in-process
//! [`Collective`]), each taking `Trainer::step_shared` on its share of the same global batch,
//! against one process's `Trainer::step` on the whole batch. Synchronised batch norm, the
//! dropout draws and the loss's normaliser (ignored pixels and class weights differ between
//! shares) are what make them equal; the MPI launch itself is tested in `tests/mpi.rs`.

use std::sync::{Arc, Barrier, Mutex};

use convlab::distributed::{Collective, World};
use convlab::engine::cpu::loss::{cross_entropy, cross_entropy_sums};
use convlab::engine::cpu::{Activation, CpuNet, Shard};
use convlab::engine::{Compute, InitSpec, LossSpec, Model, OptimizerSpec, StepBatch, Trainer};
use convlab::models::{ClassifierKind, ModelSpec, SegmenterKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// burn seeds its initialisers through global state: networks are made one at a time.
static SEEDING: Mutex<()> = Mutex::new(());

/// What the threads of one in-process world share.
struct Table {
    barrier: Barrier,
    values: Mutex<Vec<Vec<f64>>>,
    bytes: Mutex<Vec<u8>>,
    words: Mutex<Vec<u64>>,
}

/// One rank of an in-process world: sums in rank order, like MPI's on two ranks.
struct ThreadRank {
    rank: usize,
    table: Arc<Table>,
}

impl ThreadRank {
    fn sum(&self, values: &[f64]) -> Vec<f64> {
        self.table.values.lock().unwrap()[self.rank] = values.to_vec();
        self.table.barrier.wait();
        let all = self.table.values.lock().unwrap().clone();
        self.table.barrier.wait();
        (0..values.len())
            .map(|i| all.iter().map(|v| v[i]).sum())
            .collect()
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.table.values.lock().unwrap().len()
    }
    fn sum_f32(&self, values: &mut [f32]) {
        let summed = self.sum(&values.iter().map(|&v| v as f64).collect::<Vec<_>>());
        values
            .iter_mut()
            .zip(summed)
            .for_each(|(v, s)| *v = s as f32);
    }
    fn sum_f64(&self, values: &mut [f64]) {
        let summed = self.sum(values);
        values.copy_from_slice(&summed);
    }
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) {
        if self.rank == root {
            *self.table.bytes.lock().unwrap() = bytes.clone();
        }
        self.table.barrier.wait();
        *bytes = self.table.bytes.lock().unwrap().clone();
        self.table.barrier.wait();
    }
    fn gather_all(&self, value: u64) -> Vec<u64> {
        self.table.words.lock().unwrap()[self.rank] = value;
        self.table.barrier.wait();
        let all = self.table.words.lock().unwrap().clone();
        self.table.barrier.wait();
        all
    }
    fn abort(&self, code: i32) -> ! {
        panic!("rank {} aborted with {code}", self.rank)
    }
}

/// `size` ranks of one in-process world.
fn thread_world(size: usize) -> Vec<World> {
    let table = Arc::new(Table {
        barrier: Barrier::new(size),
        values: Mutex::new(vec![Vec::new(); size]),
        bytes: Mutex::new(Vec::new()),
        words: Mutex::new(vec![0; size]),
    });
    (0..size)
        .map(|rank| {
            World::over(Arc::new(ThreadRank {
                rank,
                table: Arc::clone(&table),
            }))
        })
        .collect()
}

fn batch(n: usize, shape: [usize; 3], classes: u8, per_pixel: bool, seed: u64) -> StepBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = shape;
    let targets = if per_pixel { n * h * w } else { n };
    StepBatch {
        images: (0..n * c * h * w)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
        shape: [n, c, h, w],
        // Some pixels ignored (255), more in the first images: the shares' weights differ.
        targets: (0..targets)
            .map(
                |i| match per_pixel && rng.random_range(0..targets) > i * 2 {
                    true => 255,
                    false => rng.random_range(0..classes),
                },
            )
            .collect(),
    }
}

/// Every tensor of a model by name.
type Tensors = Vec<(String, Vec<f32>)>;

fn tensors(trainer: &Trainer) -> Tensors {
    let Model::Cpu(net) = trainer.model() else {
        panic!("the CPU engine")
    };
    net.tensors()
        .into_iter()
        .map(|(name, _, values)| (name, values.to_vec()))
        .collect()
}

/// Two steps of one process on the whole batch against `ranks` threads on their shares:
/// the losses and every tensor (weights and batch norm's running statistics) after them.
fn compare(spec: ModelSpec, loss: LossSpec, batches: [StepBatch; 2], ranks: usize) {
    let optim = OptimizerSpec {
        weight_decay: 1e-4,
        decoupled_decay: false,
        average: None,
    };
    let trainers: Vec<Trainer> = {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        let compute = Compute::cpu_engine();
        (0..=ranks)
            .map(|_| Trainer::new(&spec, &optim, &InitSpec::seeded(5), &compute).unwrap())
            .collect()
    };
    let mut trainers = trainers.into_iter();
    let mut single = trainers.next().unwrap();
    let initial = tensors(&single);
    let expected: Vec<f32> = batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            single
                .step(b.clone(), &loss, 1e-3, 90 + i as u64)
                .unwrap()
                .loss
        })
        .collect();
    let results: Vec<(Vec<f32>, Tensors)> = std::thread::scope(|scope| {
        let handles: Vec<_> = thread_world(ranks)
            .into_iter()
            .zip(trainers)
            .map(|(world, mut trainer)| {
                let (loss, batches) = (&loss, &batches);
                scope.spawn(move || {
                    let losses = batches
                        .iter()
                        .enumerate()
                        .map(|(i, b)| {
                            let out =
                                trainer.step_shared(&world, b.clone(), loss, 1e-3, 90 + i as u64);
                            out.unwrap().loss
                        })
                        .collect();
                    (losses, tensors(&trainer))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let reference = tensors(&single);
    for (rank, (losses, tensors)) in results.iter().enumerate() {
        for (a, b) in losses.iter().zip(&expected) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "rank {rank}: loss {a} vs {b}"
            );
        }
        for (((name, got), (_, want)), (_, before)) in tensors.iter().zip(&reference).zip(&initial)
        {
            // Adam moves a weight by about the learning rate whatever its gradient's size, so
            // a gradient near zero summed in another order may move it differently: what is
            // compared is the total difference against the total update. Batch norm's
            // gradient is a difference of near-equal sums, so near-zero gradients are common
            // behind it: one rank against one process (nothing but where the loss is divided
            // changes) already differs by 0.26% on unet's first convolution, two ranks by up
            // to 3.4% (a batch norm's gamma). The gradients themselves are compared tightly
            // in `synchronised_batch_norm_gives_the_whole_batchs_gradients`.
            let total = |a: &[f32], b: &[f32]| -> f64 {
                a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum()
            };
            let (error, update) = (total(got, want), total(want, before));
            assert!(
                error <= 5e-2 * update.max(1e-30),
                "rank {rank}: {name} differs by {error} in all, against an update of {update}"
            );
        }
        assert_eq!(tensors, &results[0].1, "every rank holds the same model");
    }
}

#[test]
fn two_ranks_step_as_one_process_on_a_classifier_with_dropout() {
    let spec = ClassifierKind::Own.for_data([1, 28, 28], 10);
    let b = || batch(7, [1, 28, 28], 10, false, 1);
    compare(
        spec,
        LossSpec::Image {
            smoothing: Some(0.1),
        },
        [b(), batch(7, [1, 28, 28], 10, false, 2)],
        2,
    );
}

#[test]
fn three_ranks_step_as_one_process_with_batch_norm() {
    let spec = ClassifierKind::Res.for_data([1, 28, 28], 10);
    compare(
        spec,
        LossSpec::Image { smoothing: None },
        [
            batch(8, [1, 28, 28], 10, false, 3),
            batch(5, [1, 28, 28], 10, false, 4),
        ],
        3,
    );
}

#[test]
fn two_ranks_step_as_one_process_on_a_segmenter_with_weighted_ignored_pixels() {
    let spec = SegmenterKind::Unet.for_data(32, 5);
    let weights = Some(vec![0.5, 1.0, 2.0, 1.5, 3.0]);
    compare(
        spec,
        LossSpec::Pixel { weights },
        [
            batch(4, [3, 32, 32], 5, true, 5),
            batch(3, [3, 32, 32], 5, true, 6),
        ],
        2,
    );
}

/// The gradients of one training pass of `net` on `batch`: in one process, or on `world`'s
/// share of it with the sums of every rank (as `Trainer::step_shared` adds them).
fn gradients(
    net: &CpuNet,
    batch: &StepBatch,
    loss: &LossSpec,
    world: Option<World>,
) -> Vec<Vec<f32>> {
    let mut net = net.clone();
    let Some(world) = world else {
        let (out, tape) = net.forward_train(Activation::new(batch.images.clone(), batch.shape), 7);
        let l = cross_entropy(
            loss,
            &out.data,
            batch.shape[0],
            out.shape[1],
            &batch.targets,
        );
        return net.backward(tape, l.grad);
    };
    let share = world.share(batch.shape[0]);
    let mine = batch.share(share.clone());
    let shard = Shard {
        first_image: share.start,
        world: Some(world.clone()),
    };
    let (out, tape) = net.forward_train_shard(Activation::new(mine.images, mine.shape), 7, &shard);
    let l = cross_entropy_sums(loss, &out.data, mine.shape[0], out.shape[1], &mine.targets);
    let mut grads = net.backward(tape, l.grad);
    let mut weight = [l.weight];
    world.sum_f64(&mut weight);
    for g in &mut grads {
        world.sum_f32(g);
        g.iter_mut().for_each(|v| *v /= weight[0] as f32);
    }
    grads
}

#[test]
fn synchronised_batch_norm_gives_the_whole_batchs_gradients() {
    let spec = SegmenterKind::Unet.for_data(32, 5);
    let net = {
        let _one_at_a_time = SEEDING.lock().unwrap_or_else(|e| e.into_inner());
        convlab::engine::burn::init_cpu(&spec, 5)
    };
    let loss = LossSpec::Pixel {
        weights: Some(vec![0.5, 1.0, 2.0, 1.5, 3.0]),
    };
    let batch = batch(5, [3, 32, 32], 5, true, 8);
    let whole = gradients(&net, &batch, &loss, None);
    let shared: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = thread_world(2)
            .into_iter()
            .map(|world| {
                let (net, batch, loss) = (&net, &batch, &loss);
                scope.spawn(move || gradients(net, batch, loss, Some(world)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let largest_of = |g: &[f32]| g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let overall = whole.iter().map(|g| largest_of(g)).fold(0.0, f32::max);
    for (rank, grads) in shared.iter().enumerate() {
        for (i, (got, want)) in grads.iter().zip(&whole).enumerate() {
            // Sums in another order: errors relative to the tensor's largest gradient, and
            // to the network's for a convolution's bias before a batch norm, whose gradient
            // is zero but for rounding.
            let largest = largest_of(want);
            let worst = got
                .iter()
                .zip(want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * largest + 1e-6 * overall,
                "rank {rank}, tensor {i}: off by {worst} (largest gradient {largest})"
            );
        }
    }
}
