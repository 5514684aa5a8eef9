//! The n-body simulation of the Computer Language Benchmarks Game: a
//! compute-bound workload with deterministic output, for comparing runtimes.
//!
//! Usage: `nbody [STEPS]` (default 1,000,000). Prints the system's energy
//! before and after, to nine decimals.

const PI: f64 = std::f64::consts::PI;
const SOLAR_MASS: f64 = 4.0 * PI * PI;
const DAYS_PER_YEAR: f64 = 365.24;

#[derive(Clone, Copy)]
struct Body {
    pos: [f64; 3],
    vel: [f64; 3],
    mass: f64,
}

fn bodies() -> [Body; 5] {
    let planet = |p: [f64; 3], v: [f64; 3], m: f64| Body {
        pos: p,
        vel: [v[0] * DAYS_PER_YEAR, v[1] * DAYS_PER_YEAR, v[2] * DAYS_PER_YEAR],
        mass: m * SOLAR_MASS,
    };
    [
        Body { pos: [0.0; 3], vel: [0.0; 3], mass: SOLAR_MASS },
        planet(
            [4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01],
            [1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05],
            9.54791938424326609e-04,
        ),
        planet(
            [8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01],
            [-2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05],
            2.85885980666130812e-04,
        ),
        planet(
            [1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01],
            [2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05],
            4.36624404335156298e-05,
        ),
        planet(
            [1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01],
            [2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05],
            5.15138902046611451e-05,
        ),
    ]
}

fn offset_momentum(b: &mut [Body; 5]) {
    let mut p = [0.0; 3];
    for body in b.iter() {
        for k in 0..3 {
            p[k] += body.vel[k] * body.mass;
        }
    }
    for k in 0..3 {
        b[0].vel[k] = -p[k] / SOLAR_MASS;
    }
}

fn energy(b: &[Body; 5]) -> f64 {
    let mut e = 0.0;
    for i in 0..b.len() {
        let v = b[i].vel;
        e += 0.5 * b[i].mass * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        for j in (i + 1)..b.len() {
            let d = [b[i].pos[0] - b[j].pos[0], b[i].pos[1] - b[j].pos[1], b[i].pos[2] - b[j].pos[2]];
            e -= b[i].mass * b[j].mass / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        }
    }
    e
}

fn advance(b: &mut [Body; 5], dt: f64) {
    for i in 0..b.len() {
        for j in (i + 1)..b.len() {
            let d = [b[i].pos[0] - b[j].pos[0], b[i].pos[1] - b[j].pos[1], b[i].pos[2] - b[j].pos[2]];
            let d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            let mag = dt / (d2 * d2.sqrt());
            let (mi, mj) = (b[i].mass * mag, b[j].mass * mag);
            for k in 0..3 {
                b[i].vel[k] -= d[k] * mj;
                b[j].vel[k] += d[k] * mi;
            }
        }
    }
    for body in b.iter_mut() {
        for k in 0..3 {
            body.pos[k] += dt * body.vel[k];
        }
    }
}

fn main() {
    let steps: u64 = match std::env::args().nth(1) {
        None => 1_000_000,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("nbody: STEPS must be a whole number, got {:?}", s);
            std::process::exit(2);
        }),
    };
    let mut system = bodies();
    offset_momentum(&mut system);
    println!("{:.9}", energy(&system));
    for _ in 0..steps {
        advance(&mut system, 0.01);
    }
    println!("{:.9}", energy(&system));
}
