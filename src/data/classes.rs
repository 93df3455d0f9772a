//! A segmentation class as the user's `classes.json` and a run's `config.json` write it: a
//! name and the colour its masks are drawn in (`"#RRGGBB"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSpec {
    pub name: String,
    #[serde(with = "hex_color")]
    pub color: [u8; 3],
}

impl ClassSpec {
    pub fn new(name: &str, color: [u8; 3]) -> Self {
        ClassSpec {
            name: name.into(),
            color,
        }
    }

    /// `#RRGGBB`.
    pub fn hex(&self) -> String {
        hex_color::format(self.color)
    }
}

/// The colour drawn for pixels labelled [`super::IGNORE_LABEL`] (VOC's "void" cream).
pub const IGNORE_COLOR: [u8; 3] = [224, 224, 192];

/// The colour of class `label` (the ignore colour for ignored or unknown labels).
pub fn color_of(classes: &[ClassSpec], label: u8) -> [u8; 3] {
    classes
        .get(label as usize)
        .map_or(IGNORE_COLOR, |class| class.color)
}

pub mod hex_color {
    use super::*;

    pub fn format([r, g, b]: [u8; 3]) -> String {
        format!("#{r:02X}{g:02X}{b:02X}")
    }

    /// `#RRGGBB` (either case) as bytes.
    pub fn parse(text: &str) -> Option<[u8; 3]> {
        let hex = text.strip_prefix('#')?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some([byte(0)?, byte(2)?, byte(4)?])
    }

    pub fn serialize<S: Serializer>(color: &[u8; 3], s: S) -> Result<S::Ok, S::Error> {
        format(*color).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 3], D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("colour \"{text}\" is not of the form \"#RRGGBB\""))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_read_and_write_as_hex() {
        let class = ClassSpec::new("window", [255, 128, 0]);
        let text = serde_json::to_string(&class).unwrap();
        assert_eq!(text, r##"{"name":"window","color":"#FF8000"}"##);
        assert_eq!(serde_json::from_str::<ClassSpec>(&text).unwrap(), class);
        assert_eq!(hex_color::parse("#ff8000"), Some([255, 128, 0]));
        for bad in ["FF8000", "#FF800", "#GG8000", "red", "#FF80000"] {
            assert_eq!(hex_color::parse(bad), None, "{bad}");
        }
        assert_eq!(color_of(&[class], 255), IGNORE_COLOR);
    }
}
