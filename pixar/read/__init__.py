"""Reading pixels back to text: OCR engines, the glyph decoder and the word lists behind readability."""
