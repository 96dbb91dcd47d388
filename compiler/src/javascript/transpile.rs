//! One module's source → what the guest evaluates: TypeScript types stripped (oxc), the module's
//! kind (ES module, CommonJS or JSON) decided as Node decides it, and every import it makes
//! (static `import`/`export … from`, dynamic `import("…")` and `require("…")` with string
//! arguments), each with its line and column for error messages.
//!
//! Plain JavaScript is passed through byte for byte, so its stack traces keep their lines. For
//! TypeScript, the generated code's line numbers differ; [`Transpiled::lines`] maps each generated
//! line back to the original one (from oxc's source map) and the guest rewrites stack frames with it.

use oxc::allocator::Allocator;
use oxc::ast::ast::{
    Argument, CallExpression, ExportAllDeclaration, ExportFromDeclaration, Expression,
    ImportDeclaration, ImportDeclarationSpecifier, ImportExpression,
};
use oxc::ast_visit::{Visit, walk};
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::{SourceType, Span};
use oxc::transformer::{TransformOptions, Transformer};
use std::path::Path;

/// How the guest evaluates a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ES module.
    Esm,
    /// A CommonJS module (wrapped in a function of `exports, require, module, __filename, __dirname`).
    Cjs,
    /// A JSON file (its default export, or what `require` returns).
    Json,
}

impl Kind {
    /// The name used in the module map.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Esm => "esm",
            Kind::Cjs => "cjs",
            Kind::Json => "json",
        }
    }
}

/// How a module names another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// `import … from "x"`, `export … from "x"`.
    Static,
    /// `import("x")`.
    Dynamic,
    /// `require("x")`.
    Require,
}

/// One import of a module.
#[derive(Clone, Debug)]
pub struct Import {
    /// The specifier as written.
    pub specifier: String,
    /// How it is imported.
    pub kind: ImportKind,
    /// The bindings a static import takes from the module (`default` for a default import);
    /// `None` when it needs the whole namespace (`import * as`, `export *`, `import()`, `require`).
    pub names: Option<Vec<String>>,
    /// 1-based line and column of the specifier in the original source.
    pub line: u32,
    /// See `line`.
    pub column: u32,
}

/// A module ready for the guest.
#[derive(Debug)]
pub struct Transpiled {
    /// The code the guest evaluates.
    pub code: String,
    /// Its kind.
    pub kind: Kind,
    /// Its imports, in source order (duplicates included).
    pub imports: Vec<Import>,
    /// For transformed code: the original line of each generated line (index 0 = line 1).
    pub lines: Option<Vec<u32>>,
}

/// A syntax error, with its place in the file.
#[derive(Debug)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// 1-based line and column of a byte offset.
pub fn line_column(source: &str, offset: u32) -> (u32, u32) {
    let offset = (offset as usize).min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() as u32 + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[start..].chars().count() as u32 + 1;
    (line, column)
}

fn is_typescript(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("ts" | "mts" | "cts")
    )
}

/// Transpiles the module at `path` (used for its extension) with contents `source`.
pub fn transpile(path: &Path, source: &str) -> Result<Transpiled, SyntaxError> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if extension == "json" {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(source) {
            return Err(SyntaxError {
                line: e.line() as u32,
                column: e.column() as u32,
                message: format!("invalid JSON: {e}"),
            });
        }
        return Ok(Transpiled {
            code: source.to_string(),
            kind: Kind::Json,
            imports: Vec::new(),
            lines: None,
        });
    }
    let source_type = match extension {
        "mjs" => SourceType::mjs(),
        "cjs" => SourceType::cjs(),
        "mts" => SourceType::ts().with_module(true),
        "cts" => SourceType::ts().with_commonjs(true),
        "ts" => SourceType::ts().with_unambiguous(true),
        _ => SourceType::unambiguous(),
    };
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if let Some(error) = parsed.diagnostics.first() {
        let offset = error.labels.first().map_or(0, |label| label.offset());
        let (line, column) = line_column(source, offset);
        return Err(SyntaxError {
            line,
            column,
            message: error.message.to_string(),
        });
    }
    let kind = match extension {
        "mjs" | "mts" => Kind::Esm,
        "cjs" | "cts" => Kind::Cjs,
        _ if parsed.module_record.has_module_syntax => Kind::Esm,
        _ => Kind::Cjs,
    };
    let mut program = parsed.program;
    if !is_typescript(path) {
        let mut imports = Imports::new(source);
        imports.visit_program(&program);
        return Ok(Transpiled {
            code: source.to_string(),
            kind,
            imports: imports.found,
            lines: None,
        });
    }
    let semantic = SemanticBuilder::new().with_enum_eval(true).build(&program);
    let scoping = semantic.semantic.into_scoping();
    let transformed = Transformer::new(&allocator, path, &TransformOptions::default())
        .build_with_scoping(scoping, &mut program);
    if let Some(error) = transformed.diagnostics.first() {
        let offset = error.labels.first().map_or(0, |label| label.offset());
        let (line, column) = line_column(source, offset);
        return Err(SyntaxError {
            line,
            column,
            message: error.message.to_string(),
        });
    }
    // Imports are collected after the transform: type-only imports are gone by then.
    let mut imports = Imports::new(source);
    imports.visit_program(&program);
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(path.to_path_buf()),
            ..CodegenOptions::default()
        })
        .build(&program);
    let lines = generated.map.map(|map| {
        let count = generated.code.lines().count().max(1);
        let mut table = vec![0u32; count];
        for token in map.get_tokens() {
            let dst = token.get_dst_line() as usize;
            if dst < count && table[dst] == 0 {
                table[dst] = token.get_src_line() + 1;
            }
        }
        // Lines without a token (closing braces) take the line before them.
        let mut last = 1;
        for entry in &mut table {
            if *entry == 0 {
                *entry = last;
            } else {
                last = *entry;
            }
        }
        table
    });
    Ok(Transpiled {
        code: generated.code,
        kind,
        imports: imports.found,
        lines,
    })
}

/// Collects the string specifiers a module imports.
struct Imports<'s> {
    source: &'s str,
    found: Vec<Import>,
}

impl<'s> Imports<'s> {
    fn new(source: &'s str) -> Self {
        Imports {
            source,
            found: Vec::new(),
        }
    }

    fn add(&mut self, specifier: &str, span: Span, kind: ImportKind, names: Option<Vec<String>>) {
        // Spans of nodes the transform created are empty; their place is unknown.
        let (line, column) = if span.is_empty() {
            (0, 0)
        } else {
            line_column(self.source, span.start)
        };
        self.found.push(Import {
            specifier: specifier.to_string(),
            kind,
            names,
            line,
            column,
        });
    }
}

impl<'a> Visit<'a> for Imports<'_> {
    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        if it.import_kind.is_type() {
            return;
        }
        let mut names = Some(Vec::new());
        for specifier in it.specifiers.iter().flatten() {
            match specifier {
                ImportDeclarationSpecifier::ImportSpecifier(s) if !s.import_kind.is_type() => {
                    if let Some(names) = &mut names {
                        names.push(s.imported.name().to_string());
                    }
                }
                ImportDeclarationSpecifier::ImportSpecifier(_) => {}
                ImportDeclarationSpecifier::ImportDefaultSpecifier(_) => {
                    if let Some(names) = &mut names {
                        names.push("default".to_string());
                    }
                }
                ImportDeclarationSpecifier::ImportNamespaceSpecifier(_) => names = None,
            }
        }
        self.add(&it.source.value, it.source.span, ImportKind::Static, names);
    }

    fn visit_export_from_declaration(&mut self, it: &ExportFromDeclaration<'a>) {
        if !it.export_kind.is_type() {
            let names = it
                .specifiers
                .iter()
                .filter(|s| !s.export_kind.is_type())
                .map(|s| s.local.name().to_string())
                .collect();
            self.add(
                &it.source.value,
                it.source.span,
                ImportKind::Static,
                Some(names),
            );
        }
    }

    fn visit_export_all_declaration(&mut self, it: &ExportAllDeclaration<'a>) {
        if !it.export_kind.is_type() {
            self.add(&it.source.value, it.source.span, ImportKind::Static, None);
        }
    }

    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        if let Expression::StringLiteral(literal) = &it.source {
            self.add(&literal.value, literal.span, ImportKind::Dynamic, None);
        }
        walk::walk_import_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if let Expression::Identifier(callee) = &it.callee
            && callee.name == "require"
            && it.arguments.len() == 1
            && let Some(Argument::StringLiteral(literal)) = it.arguments.first()
        {
            self.add(&literal.value, literal.span, ImportKind::Require, None);
        }
        walk::walk_call_expression(self, it);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_keeps_value_imports() {
        let source = "import type { A } from './a';\nimport { b } from './b';\nenum E { X = 1 }\nexport const v: number = b + E.X;\n";
        let out = transpile(Path::new("m.ts"), source).expect("transpiles");
        assert_eq!(out.kind, Kind::Esm);
        let specifiers: Vec<_> = out.imports.iter().map(|i| i.specifier.as_str()).collect();
        assert_eq!(specifiers, ["./b"]);
        assert!(!out.code.contains(": number"), "{}", out.code);
        assert_eq!(out.imports[0].line, 2);
    }

    #[test]
    fn detects_commonjs_and_requires() {
        let out = transpile(
            Path::new("m.js"),
            "const x = require('x');\nmodule.exports = x;\n",
        )
        .expect("parses");
        assert_eq!(out.kind, Kind::Cjs);
        assert_eq!(out.imports[0].kind, ImportKind::Require);
        assert_eq!(out.code, "const x = require('x');\nmodule.exports = x;\n");
    }

    #[test]
    fn syntax_error_has_a_place() {
        let error =
            transpile(Path::new("m.ts"), "const a = 1;\nconst b: = 2;\n").expect_err("fails");
        assert_eq!(error.line, 2);
    }
}
