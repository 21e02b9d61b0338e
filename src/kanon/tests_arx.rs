//! ARX's own expected figures on the Adult data.

use super::arx_adult::{
    COLUMNS, default_dir, load_adult, load_adult_columns, parse_csv, parse_levels,
};
use super::*;

fn records(file: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(default_dir().join(file)).unwrap();
    let mut rows = parse_csv(&text);
    let header = rows.remove(0);
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[test]
fn csv_reader_handles_quotes() {
    let r = parse_csv("a,\"[1, 2]\",\"x \"\"y\"\"\"\n");
    assert_eq!(
        r,
        vec![vec!["a".to_string(), "[1, 2]".into(), "x \"y\"".into()]]
    );
}

#[test]
fn arx_utility_figures() {
    let (header, rows) = records("arx_expected_utility.csv");
    assert_eq!(rows.len(), 30);
    let qis: Vec<&str> = rows[0][col(&header, "quasi_identifiers")]
        .split('|')
        .collect();
    let (data, _) = load_adult_columns(&default_dir(), &qis).unwrap();
    assert_eq!(data.num_rows(), 30162);
    for r in &rows {
        assert_eq!(
            r[col(&header, "quasi_identifiers")]
                .split('|')
                .collect::<Vec<_>>(),
            qis
        );
        assert_eq!(
            r[col(&header, "suppression_limit")].parse::<f64>().unwrap(),
            0.0
        );
        let k: u64 = r[col(&header, "k")].parse().unwrap();
        let levels = parse_levels(&r[col(&header, "levels")]);
        let expected: f64 = r[col(&header, "arx_expected")].parse().unwrap();
        let m = measures(&data, &levels, k).unwrap();
        match r[col(&header, "metric")].as_str() {
            "AECS" => {
                assert!(
                    ((m.aecs - expected) / expected).abs() < 1e-9,
                    "AECS {levels:?}: {} vs {expected}",
                    m.aecs
                )
            }
            "DM_monotonic" => assert_eq!(m.discernibility_monotonic, expected, "DM* {levels:?}"),
            "DM_nonmonotonic" => assert_eq!(m.discernibility, expected, "DM {levels:?}"),
            other => panic!("unknown metric {other}"),
        }
    }
}

#[test]
fn arx_kanonymity_optima() {
    let (header, rows) = records("arx_expected_kanonymity_optimum.csv");
    assert_eq!(rows.len(), 4);
    let (data, names) = load_adult(&default_dir()).unwrap();
    assert_eq!(names, COLUMNS);
    for r in &rows {
        let qis: Vec<&str> = r[col(&header, "quasi_identifiers")].split('|').collect();
        assert_eq!(qis, COLUMNS);
        let k: u64 = r[col(&header, "k")].parse().unwrap();
        let supp: f64 = r[col(&header, "suppression_limit")].parse().unwrap();
        let expected_levels = parse_levels(&r[col(&header, "arx_optimal_levels")]);
        let expected_loss: f64 = r[col(&header, "arx_optimal_info_loss")].parse().unwrap();
        let o = optimize(&data, k, supp)
            .unwrap()
            .expect("an optimum exists");
        assert_eq!(o.levels, expected_levels, "k={k} supp={supp}");
        assert!(
            ((o.info_loss - expected_loss) / expected_loss).abs() < 1e-6,
            "{} vs {expected_loss}",
            o.info_loss
        );
        let limit = (supp * 30162.0).floor() as u64;
        assert!(o.suppressed <= limit);
        assert_eq!(o.lattice_size, 2 * 5 * 2 * 3 * 4 * 3 * 3 * 3 * 2);
        // Cross-check the suppression with a per-row generalization.
        let g = data.generalization(&o.levels, k).unwrap();
        assert_eq!(g.num_suppressed(), o.suppressed);
        assert_eq!(g.suppressed_rows().len() as u64, o.suppressed);
        assert_eq!(g.measures_suppressed(), o.measures);
        eprintln!(
            "k={k} supp={supp}: {:?} loss {} checked {} suppressed {}",
            o.levels, o.info_loss, o.nodes_checked, o.suppressed
        );
    }
}

#[test]
fn per_row_values() {
    let (data, _) = load_adult(&default_dir()).unwrap();
    // First data row: Male;39;White;Never-married;Bachelors;United-States;State-gov;Adm-clerical;<=50K
    assert_eq!(data.value(1, 0), "39");
    assert_eq!(data.generalized_value(1, 0, 4), Some("*"));
    assert_eq!(data.generalized_value(0, 0, 1), Some("*"));
    assert_eq!(data.generalized_value(0, 0, 2), None);
    let g = data
        .generalization(&[0, 1, 0, 0, 0, 0, 0, 0, 0], 2)
        .unwrap();
    assert_eq!(g.value(0, 0), "Male");
    assert_eq!(
        g.value(0, 1),
        data.hierarchy(1).generalize("39", 1).unwrap()
    );
    assert!(matches!(
        measures(&data, &[0, 5, 0, 0, 0, 0, 0, 0, 0], 2),
        Err(KanonError::LevelOutOfRange { level: 5, .. })
    ));
    assert!(matches!(
        measures(&data, &[0, 0], 2),
        Err(KanonError::LevelCount { .. })
    ));
}
