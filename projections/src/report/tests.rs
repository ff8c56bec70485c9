//! Unit tests of the CSV cells' neutralisation.

use super::rows::Row;
use super::*;

fn row(text: &'static str) -> Row<'static> {
    Row {
        conversation_id: "c".to_owned(),
        company_id: "co".to_owned(),
        group_id: "g".to_owned(),
        group_name: text,
        channel: "CHAT",
        customer: text,
        opened_at: "t0".to_owned(),
        closed_at: "t1".to_owned(),
        assignee_id: None,
        assignee_name: Some(text),
        position: 7,
        time: "t".to_owned(),
        author_kind: "CUSTOMER",
        author_id: None,
        author_name: text,
        visibility: "PUBLIC",
        body: text,
    }
}

#[test]
fn csv_cells_that_would_run_as_formulas_get_a_leading_quote() {
    for text in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
        let mut out = Vec::new();
        let request = ReportRequest {
            from: RecordedAt::from_micros(0),
            to: RecordedAt::from_micros(1),
            group: None,
            company: None,
            viewer: None,
            format: ReportFormat::Csv,
        };
        let mut writer = RowWriter::new(&mut out, &request, 1).unwrap();
        writer.write(&row(text)).unwrap();
        writer.finish().unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let record = reader.records().next().unwrap().unwrap();
        let quoted = format!("'{text}");
        for column in [3, 5, 9, 14, 16] {
            assert_eq!(&record[column], quoted, "{text:?} in column {column}");
        }
        assert_eq!(&record[8], "", "absent values stay empty");
    }
}

#[test]
fn other_cells_are_written_as_they_are() {
    for text in [
        "Alice",
        "1-2",
        "a=b",
        " =x",
        "'quoted",
        "",
        "é=",
        "\u{feff}=",
    ] {
        assert_eq!(neutralise(text).as_ref(), text.as_bytes());
    }
}
