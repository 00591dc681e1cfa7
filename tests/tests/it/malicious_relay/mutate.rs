//! The rewrites a malicious relay can make to one JSON answer, generated from a sample answer
//! rather than listed by hand: for every field, every rewrite that fits its type (bump a
//! character, truncate, empty, shift a number by one or by the clock-skew allowance plus one,
//! flip a boolean, drop, duplicate or reorder list items, remove the field, name another enum
//! variant), and for every donor answer (the same endpoint's answer in another flow: another
//! challenge, device, account or NAS) its value of that field, and the whole donor answer.

use serde_json::Value;

/// The relay's clock-skew allowance (`--clock-skew-secs` default) plus one second.
const SKEW_PLUS_ONE: i64 = 61;

/// Enum words of the wire format: a field holding one may be given any other.
const ENUM_WORDS: &[&[&str]] = &[
    &["approve", "deny", "fraud"],
    &["login", "passwordless", "action"],
    &["handle_refreshed", "push_gone", "unpaired", "muted"],
    &["apns", "fcm"],
];

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// What is done at a path.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the character at (from the start, or from the end when negative) by the next
    /// one of its class.
    Bump(isize),
    Truncate,
    Empty,
    Add(i64),
    Toggle,
    DropFirst,
    DuplicateFirst,
    Reverse,
    Remove,
    Set(Value),
}

/// One generated rewrite.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub label: String,
    path: Vec<Step>,
    edit: Edit,
}

impl Mutation {
    /// Replace the whole answer with `answer` (a replay of another flow's).
    pub fn whole(answer: &Value) -> Self {
        Self {
            label: "replace the whole answer".to_owned(),
            path: Vec::new(),
            edit: Edit::Set(answer.clone()),
        }
    }

    /// Rewrite `answer`; `None` when the path does not exist in it or nothing changed.
    pub fn apply(&self, answer: &Value) -> Option<Value> {
        let mut changed = answer.clone();
        if self.path.is_empty() {
            if let Edit::Set(whole) = &self.edit {
                changed = whole.clone();
            }
        } else {
            let (last, parents) = self.path.split_last()?;
            let mut parent = &mut changed;
            for step in parents {
                parent = child(parent, step)?;
            }
            if let Edit::Remove = self.edit {
                match (parent, last) {
                    (Value::Object(map), Step::Key(key)) => {
                        map.remove(key)?;
                    }
                    (Value::Array(items), Step::Index(index)) if *index < items.len() => {
                        items.remove(*index);
                    }
                    _ => return None,
                }
            } else {
                let target = child(parent, last)?;
                *target = edited(target, &self.edit)?;
            }
        }
        (changed != *answer).then_some(changed)
    }
}

fn child<'a>(value: &'a mut Value, step: &Step) -> Option<&'a mut Value> {
    match (value, step) {
        (Value::Object(map), Step::Key(key)) => map.get_mut(key),
        (Value::Array(items), Step::Index(index)) => items.get_mut(*index),
        _ => None,
    }
}

fn value_at<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |value, step| match (value, step) {
            (Value::Object(map), Step::Key(key)) => map.get(key),
            (Value::Array(items), Step::Index(index)) => items.get(*index),
            _ => None,
        })
}

/// The next character of `c`'s class (digits, lower, upper case wrap; others become `A`).
fn bump_char(c: char) -> char {
    match c {
        '9' => '0',
        'z' => 'a',
        'Z' => 'A',
        '0'..='8' | 'a'..='y' | 'A'..='Y' => char::from(c as u8 + 1),
        '-' => '_',
        '_' => '-',
        _ => 'A',
    }
}

fn edited(value: &Value, edit: &Edit) -> Option<Value> {
    Some(match (value, edit) {
        (Value::String(text), Edit::Bump(at)) => {
            let mut chars: Vec<char> = text.chars().collect();
            let index = if *at >= 0 {
                usize::try_from(*at).ok()?
            } else {
                chars.len().checked_sub(at.unsigned_abs())?
            };
            let c = chars.get_mut(index)?;
            *c = bump_char(*c);
            Value::String(chars.into_iter().collect())
        }
        (Value::String(text), Edit::Truncate) if text.len() > 1 => {
            Value::String(text.chars().take(text.chars().count() / 2).collect())
        }
        (Value::String(_), Edit::Empty) => Value::String(String::new()),
        (Value::Number(number), Edit::Add(delta)) => {
            let shifted = number.as_i64()?.checked_add(*delta)?;
            Value::from(shifted)
        }
        (Value::Bool(flag), Edit::Toggle) => Value::Bool(!flag),
        (Value::Array(items), Edit::DropFirst) if !items.is_empty() => {
            Value::Array(items[1..].to_vec())
        }
        (Value::Array(items), Edit::DuplicateFirst) if !items.is_empty() => {
            let mut items = items.clone();
            items.insert(0, items[0].clone());
            Value::Array(items)
        }
        (Value::Array(items), Edit::Reverse) if items.len() > 1 => {
            Value::Array(items.iter().rev().cloned().collect())
        }
        (Value::Array(_), Edit::Empty) => Value::Array(Vec::new()),
        (_, Edit::Set(replacement)) => replacement.clone(),
        _ => return None,
    })
}

fn path_label(path: &[Step]) -> String {
    if path.is_empty() {
        return "answer".to_owned();
    }
    path.iter()
        .map(|step| match step {
            Step::Key(key) => key.clone(),
            Step::Index(index) => index.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Every path of `value` (objects and arrays included), depth first.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(Step::Key(key.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(Step::Index(index));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// Every rewrite of answers shaped like `sample`, with `donors` (name, answer) to take values
/// from. Rewrites that would not change `sample` are left out.
pub fn mutations(sample: &Value, donors: &[(&str, Value)]) -> Vec<Mutation> {
    let mut all_paths = Vec::new();
    paths(sample, &mut Vec::new(), &mut all_paths);
    let mut generated = Vec::new();
    let mut push = |path: &[Step], edit: Edit, what: String| {
        generated.push(Mutation {
            label: format!("{what} {}", path_label(path)),
            path: path.to_vec(),
            edit,
        });
    };
    for path in &all_paths {
        let Some(value) = value_at(sample, path) else {
            continue;
        };
        match value {
            Value::String(text) => {
                for (at, what) in [
                    (0, "bump the first character of"),
                    (-1, "bump the last character of"),
                ] {
                    push(path, Edit::Bump(at), what.to_owned());
                }
                if text.chars().count() > 2 {
                    let middle = isize::try_from(text.chars().count() / 2).unwrap_or(0);
                    push(
                        path,
                        Edit::Bump(middle),
                        "bump the middle character of".to_owned(),
                    );
                }
                push(path, Edit::Truncate, "truncate".to_owned());
                push(path, Edit::Empty, "empty".to_owned());
                for words in ENUM_WORDS {
                    if words.contains(&text.as_str()) {
                        for word in words.iter().filter(|word| **word != text) {
                            push(
                                path,
                                Edit::Set(Value::from(*word)),
                                format!("say `{word}` in"),
                            );
                        }
                    }
                }
            }
            Value::Number(_) => {
                for delta in [1, -1, SKEW_PLUS_ONE, -SKEW_PLUS_ONE] {
                    push(path, Edit::Add(delta), format!("add {delta} to"));
                }
                push(path, Edit::Set(Value::from(0)), "zero".to_owned());
            }
            Value::Bool(_) => push(path, Edit::Toggle, "flip".to_owned()),
            Value::Array(_) => {
                push(path, Edit::DropFirst, "drop the first item of".to_owned());
                push(
                    path,
                    Edit::DuplicateFirst,
                    "duplicate the first item of".to_owned(),
                );
                push(path, Edit::Reverse, "reorder".to_owned());
                push(path, Edit::Empty, "empty".to_owned());
            }
            Value::Null | Value::Object(_) => {}
        }
        if !path.is_empty() {
            push(path, Edit::Remove, "remove".to_owned());
        }
        for (donor, answer) in donors {
            match value_at(answer, path) {
                Some(theirs) if theirs != value => {
                    let what = if path.is_empty() {
                        format!("replace with {donor}:")
                    } else {
                        format!("take from {donor}:")
                    };
                    push(path, Edit::Set(theirs.clone()), what);
                }
                _ => {}
            }
        }
    }
    if let Value::Object(map) = sample {
        let mut extended = map.clone();
        extended.insert("approved".to_owned(), Value::Bool(true));
        push(
            &[],
            Edit::Set(Value::Object(extended)),
            "add an unknown field to".to_owned(),
        );
    }
    generated.retain(|mutation| mutation.apply(sample).is_some());
    generated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_gets_every_fitting_rewrite_and_donors_give_theirs() {
        let sample = serde_json::json!({"verdict": {"decision": "deny", "at": 10, "ok": true}, "sig": "AAAA", "list": [1, 2]});
        let donor = serde_json::json!({"verdict": {"decision": "approve", "at": 10, "ok": true}, "sig": "BBBB", "list": [1, 2]});
        let generated = mutations(&sample, &[("other", donor.clone())]);
        let labels: Vec<&str> = generated.iter().map(|m| m.label.as_str()).collect();
        for expected in [
            "say `approve` in verdict.decision",
            "add 61 to verdict.at",
            "flip verdict.ok",
            "bump the first character of sig",
            "take from other: sig",
            "take from other: verdict.decision",
            "replace with other: answer",
            "reorder list",
            "remove verdict",
        ] {
            assert!(labels.contains(&expected), "{expected} not in {labels:?}");
        }
        // Each one changes the sample, and a donor's equal values are not offered.
        assert!(generated.iter().all(|m| m.apply(&sample).is_some()));
        assert!(!labels.contains(&"take from other: verdict.at"));
        let approve = generated
            .iter()
            .find(|m| m.label == "say `approve` in verdict.decision")
            .expect("flip");
        assert_eq!(
            approve.apply(&sample).expect("applies")["verdict"]["decision"],
            "approve"
        );
    }
}
