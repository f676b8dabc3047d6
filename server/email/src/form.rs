//! A provider's form post (Mailgun's and SendGrid's parsed mail), however
//! it was encoded: `application/x-www-form-urlencoded` is decoded here;
//! `multipart/form-data` is split by the HTTP layer (it streams) into the
//! same [`Form`].

/// One field; a file upload has a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<Field>,
}

impl Form {
    pub fn from_urlencoded(body: &[u8]) -> Self {
        let fields = form_urlencoded::parse(body)
            .map(|(name, value)| Field {
                name: name.into_owned(),
                file_name: None,
                content_type: None,
                data: value.into_owned().into_bytes(),
            })
            .collect();
        Self { fields }
    }

    /// The first field called `name`, as text (invalid UTF-8 replaced).
    pub fn text(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
    }

    /// The first field called `name`, as sent.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.data.as_slice())
    }

    /// The file uploads whose field name starts with `prefix`
    /// (`attachment-1`, `attachment2`), in order.
    pub fn files<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.file_name.is_some() && f.name.starts_with(prefix))
    }
}
