#!/usr/bin/env python3
"""Writes the document samples under tests/samples/{docx,odt,epub,pdf}/ (run from anywhere).

Every file is written by us, in the layout the exporting application writes, so the parsers
are tested on real structure without copying anyone's document:
- docx: Word 2016 package layout (ECMA-376 Part 1/2: [Content_Types].xml, _rels/.rels,
  word/document.xml, word/styles.xml, docProps/core.xml, docProps/app.xml), with a tracked
  deletion, a field code, a text box with its VML fallback, a list and a table.
- odt: LibreOffice 7 layout (ODF 1.3: `mimetype` stored first, META-INF/manifest.xml,
  content.xml, styles.xml, meta.xml), with a table of contents, a footnote, a comment,
  a list and `text:s`/`text:tab`/`text:line-break`.
- epub: EPUB 3.2 (container.xml, OPF with nav + NCX, a cover page with only an image, a
  chapter split into two files as Calibre does) and EPUB 2.0.1 (NCX only).
- pdf: PDF 1.4 written object by object (ISO 32000-1): Info dictionary, a Flate-compressed
  content stream with TJ kerning and Tm/Td moves, two pages; an image-only "scan"; the
  encrypted variant is made from the first with `qpdf --encrypt` when qpdf is installed.
Dates are fixed so the files are byte-for-byte reproducible, except the two encrypted PDFs
(qpdf salts AES-256 keys randomly; their text and metadata do not change).
"""
import os
import subprocess
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.dirname(HERE)
FIXED = (2024, 3, 1, 12, 0, 0)


def write_zip(path, entries):
    """entries: list of (name, text, stored?)"""
    with zipfile.ZipFile(path, "w") as z:
        for name, text, stored in entries:
            info = zipfile.ZipInfo(name, FIXED)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            z.writestr(info, text.encode("utf-8"))


# ---------------------------------------------------------------- docx
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
DOCX_CT = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/><Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/><Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/></Types>"""
DOCX_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"""
DOCX_DOC_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"""
DOCX_STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles {W}><w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii="Calibri"/></w:rPr></w:rPrDefault></w:docDefaults><w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style><w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/><w:basedOn w:val="Normal"/></w:style><w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style><w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style><w:style w:type="paragraph" w:styleId="ListParagraph"><w:name w:val="List Paragraph"/></w:style></w:styles>"""


def wp(text, style=None, num=False):
    ppr = ""
    if style or num:
        ppr = "<w:pPr>"
        if style:
            ppr += f'<w:pStyle w:val="{style}"/>'
        if num:
            ppr += '<w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>'
        ppr += "</w:pPr>"
    return f'<w:p w:rsidR="00A1B2C3">{ppr}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


DOCX_BODY = "".join([
    wp("Notes on the garden year", "Title"),
    wp("Spring", "Heading1"),
    '<w:p><w:r><w:t xml:space="preserve">The tomatoes went in on </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>12 April</w:t></w:r>'
    '<w:del w:id="1" w:author="Ana Sousa" w:date="2023-04-13T09:00:00Z"><w:r><w:delText>, far too early</w:delText></w:r></w:del>'
    '<w:r><w:t xml:space="preserve">, and the frost came a week later. Lesson: wait for May &amp; cover them.</w:t></w:r></w:p>',
    "<w:p/>",
    wp("Seeds to order:", None),
    wp("Cherokee Purple", "ListParagraph", num=True),
    wp("Sungold", "ListParagraph", num=True),
    wp("Summer", "Heading1"),
    '<w:p><w:r><w:t>Watering</w:t></w:r><w:r><w:tab/><w:t>every second evening</w:t></w:r><w:r><w:br/><w:t>(more in July)</w:t></w:r></w:p>',
    '<w:tbl><w:tblPr><w:tblW w:w="0" w:type="auto"/></w:tblPr><w:tr><w:tc><w:p><w:r><w:t>Crop</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Kilos</w:t></w:r></w:p></w:tc></w:tr>'
    '<w:tr><w:tc><w:p><w:r><w:t>Beans</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>4.5</w:t></w:r></w:p></w:tc></w:tr></w:tbl>',
    '<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic><a:graphicData><wps:wsp><wps:txbx><w:txbxContent>'
    '<w:p><w:r><w:t>Remember the netting!</w:t></w:r></w:p></w:txbxContent></wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>'
    '<mc:Fallback><w:pict><v:shape><v:textbox><w:txbxContent><w:p><w:r><w:t>Remember the netting!</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>',
    '<w:p><w:r><w:t xml:space="preserve">Page </w:t></w:r><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>1</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>',
])
DOCX_DOCUMENT = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document {W} xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" xmlns:v="urn:schemas-microsoft-com:vml" mc:Ignorable="w14 wp14"><w:body>{DOCX_BODY}<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr></w:body></w:document>"""
DOCX_CORE = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>Garden year 2023</dc:title><dc:subject></dc:subject><dc:creator>Ana Sousa</dc:creator><cp:keywords></cp:keywords><dc:description></dc:description><cp:lastModifiedBy>Rui Sousa</cp:lastModifiedBy><cp:revision>7</cp:revision><dcterms:created xsi:type="dcterms:W3CDTF">2023-04-13T08:41:00Z</dcterms:created><dcterms:modified xsi:type="dcterms:W3CDTF">2023-09-30T17:05:00Z</dcterms:modified></cp:coreProperties>"""
DOCX_APP = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"><Template>Normal.dotm</Template><TotalTime>42</TotalTime><Pages>1</Pages><Application>Microsoft Office Word</Application><AppVersion>16.0000</AppVersion></Properties>"""


def docx():
    write_zip(os.path.join(SAMPLES, "docx", "garden.docx"), [
        ("[Content_Types].xml", DOCX_CT, False),
        ("_rels/.rels", DOCX_RELS, False),
        ("word/document.xml", DOCX_DOCUMENT, False),
        ("word/_rels/document.xml.rels", DOCX_DOC_RELS, False),
        ("word/styles.xml", DOCX_STYLES, False),
        ("docProps/core.xml", DOCX_CORE, False),
        ("docProps/app.xml", DOCX_APP, False),
    ])


# ---------------------------------------------------------------- odt
ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:dc="http://purl.org/dc/elements/1.1/" '
          'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
          'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" office:version="1.3"')
ODT_CONTENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {ODF_NS}><office:scripts/><office:font-face-decls><style:font-face style:name="Liberation Serif"/></office:font-face-decls><office:automatic-styles><style:style style:name="P1" style:family="paragraph"><style:text-properties fo:font-weight="bold"/></style:style><style:style style:name="T1" style:family="text"><style:text-properties fo:font-style="italic"/></style:style></office:automatic-styles><office:body><office:text><text:sequence-decls><text:sequence-decl text:display-outline-level="0" text:name="Table"/></text:sequence-decls><text:table-of-content text:name="Table of Contents1"><text:table-of-content-source text:outline-level="10"><text:index-title-template>Contents</text:index-title-template></text:table-of-content-source><text:index-body><text:index-title text:name="Table of Contents1_Head"><text:p text:style-name="Contents_20_Heading">Contents</text:p></text:index-title><text:p text:style-name="Contents_20_1">Trip to Porto<text:tab/>1</text:p></text:index-body></text:table-of-content><text:h text:style-name="Heading_20_1" text:outline-level="1">Trip to Porto</text:h><text:p text:style-name="Text_20_body">We took the <text:span text:style-name="T1">Alfa Pendular</text:span> at 8:09 and were in Campanhã before eleven.<text:note text:id="ftn1" text:note-class="footnote"><text:note-citation>1</text:note-citation><text:note-body><text:p text:style-name="Footnote">The 8:09 is the fast one.</text:p></text:note-body></text:note> Lunch was <text:s/>francesinha, of course.<office:annotation><dc:creator>Rui Sousa</dc:creator><dc:date>2022-10-02T10:00:00</dc:date><text:p>it was two francesinhas</text:p></office:annotation></text:p><text:h text:style-name="Heading_20_2" text:outline-level="2">Things to do next time</text:h><text:list text:style-name="L1"><text:list-item><text:p text:style-name="P2">Livraria Lello, early</text:p></text:list-item><text:list-item><text:p text:style-name="P2">Port cellars in Gaia</text:p></text:list-item></text:list><text:p text:style-name="Text_20_body">Costs:<text:tab/>€ 84<text:line-break/>(two people, one night)</text:p><table:table table:name="Table1"><table:table-column table:number-columns-repeated="2"/><table:table-row><table:table-cell office:value-type="string"><text:p>Train</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>€ 49</text:p></table:table-cell></table:table-row></table:table><text:p text:style-name="Text_20_body"/></office:text></office:body></office:document-content>"""
ODT_META = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-meta {ODF_NS}><office:meta><meta:creation-date>2022-10-01T21:14:09.532000000</meta:creation-date><dc:date>2022-10-03T08:00:12.101000000</dc:date><meta:editing-duration>PT1H2M</meta:editing-duration><meta:editing-cycles>4</meta:editing-cycles><meta:generator>LibreOffice/7.4.7.2$Linux_X86_64 LibreOffice_project/40$Build-2</meta:generator><dc:title>Porto, October</dc:title><meta:initial-creator>Ana Sousa</meta:initial-creator><dc:creator>Rui Sousa</dc:creator><meta:document-statistic meta:page-count="1" meta:word-count="71"/></office:meta></office:document-meta>"""
ODT_STYLES = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-styles {ODF_NS}><office:styles><style:style style:name="Standard" style:family="paragraph"/></office:styles></office:document-styles>"""
ODT_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:version="1.3" manifest:media-type="application/vnd.oasis.opendocument.text"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/><manifest:file-entry manifest:full-path="styles.xml" manifest:media-type="text/xml"/><manifest:file-entry manifest:full-path="meta.xml" manifest:media-type="text/xml"/></manifest:manifest>"""


def odt():
    write_zip(os.path.join(SAMPLES, "odt", "porto.odt"), [
        ("mimetype", "application/vnd.oasis.opendocument.text", True),
        ("content.xml", ODT_CONTENT, False),
        ("styles.xml", ODT_STYLES, False),
        ("meta.xml", ODT_META, False),
        ("META-INF/manifest.xml", ODT_MANIFEST, False),
    ])


# ---------------------------------------------------------------- epub
CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"""


def xhtml(title, body):
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="en"><head><title>{title}</title><link rel="stylesheet" type="text/css" href="../Styles/style.css"/></head>
<body>{body}</body></html>"""


EPUB3_OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="uid">urn:uuid:6f1b9f0e-3c1e-4c7a-9d55-0c2f0a7d1e11</dc:identifier><dc:title>Small Harbour Stories</dc:title><dc:creator id="cre">Ana Sousa</dc:creator><meta refines="#cre" property="role" scheme="marc:relators">aut</meta><dc:language>en</dc:language><dc:date>2021-11-20</dc:date><meta property="dcterms:modified">2022-01-05T10:00:00Z</meta></metadata><manifest><item id="nav" href="Text/nav.xhtml" media-type="application/xhtml+xml" properties="nav"/><item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/><item id="cover" href="Text/cover.xhtml" media-type="application/xhtml+xml"/><item id="cover-img" href="Images/cover.jpg" media-type="image/jpeg" properties="cover-image"/><item id="css" href="Styles/style.css" media-type="text/css"/><item id="ch1" href="Text/chapter%201.xhtml" media-type="application/xhtml+xml"/><item id="ch1b" href="Text/chapter%201_split_001.xhtml" media-type="application/xhtml+xml"/><item id="ch2" href="Text/chapter2.xhtml" media-type="application/xhtml+xml"/></manifest><spine toc="ncx"><itemref idref="cover" linear="no"/><itemref idref="nav" linear="no"/><itemref idref="ch1"/><itemref idref="ch1b"/><itemref idref="ch2"/></spine></package>"""
EPUB3_NAV = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body><nav epub:type="toc" id="toc"><h1>Contents</h1><ol><li><a href="chapter%201.xhtml">The&nbsp;Ferry</a></li><li><a href="chapter2.xhtml#start">Salt &amp; Light</a></li></ol></nav><nav epub:type="landmarks" hidden=""><ol><li><a epub:type="cover" href="cover.xhtml">Cover</a></li></ol></nav></body></html>"""
EPUB3_NCX = """<?xml version="1.0" encoding="utf-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head><meta name="dtb:uid" content="urn:uuid:6f1b9f0e-3c1e-4c7a-9d55-0c2f0a7d1e11"/></head><docTitle><text>Small Harbour Stories</text></docTitle><navMap><navPoint id="np1" playOrder="1"><navLabel><text>The Ferry</text></navLabel><content src="Text/chapter%201.xhtml"/></navPoint><navPoint id="np2" playOrder="2"><navLabel><text>Salt &amp; Light</text></navLabel><content src="Text/chapter2.xhtml#start"/></navPoint></navMap></ncx>"""


def epub3():
    write_zip(os.path.join(SAMPLES, "epub", "harbour.epub"), [
        ("mimetype", "application/epub+zip", True),
        ("META-INF/container.xml", CONTAINER, False),
        ("OEBPS/content.opf", EPUB3_OPF, False),
        ("OEBPS/toc.ncx", EPUB3_NCX, False),
        ("OEBPS/Text/nav.xhtml", EPUB3_NAV, False),
        ("OEBPS/Text/cover.xhtml", xhtml("Cover", '<div class="cover"><img src="../Images/cover.jpg" alt=""/></div>'), False),
        ("OEBPS/Styles/style.css", "body { font-family: serif; }\n", False),
        ("OEBPS/Text/chapter 1.xhtml", xhtml("Small Harbour Stories",
            '<h1 id="start">The Ferry</h1><p>The ferry left at six, whatever the weather.</p><p>Nobody on the quay believed the timetable.</p>'), False),
        ("OEBPS/Text/chapter 1_split_001.xhtml", xhtml("Small Harbour Stories",
            '<p>By seven the fog had lifted&#8212;and the ferry was still there.</p>'), False),
        ("OEBPS/Text/chapter2.xhtml", xhtml("Small Harbour Stories",
            '<section epub:type="chapter"><h1 id="start">Salt &amp; Light</h1><p>Maria dried cod on the roof every August.</p></section>'), False),
    ])


EPUB2_OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" unique-identifier="BookId" version="2.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf"><dc:title>Letters Home</dc:title><dc:creator opf:role="aut" opf:file-as="Sousa, Rui">Rui Sousa</dc:creator><dc:contributor opf:role="edt">Ana Sousa</dc:contributor><dc:language>pt</dc:language><dc:identifier id="BookId" opf:scheme="UUID">urn:uuid:0a8c7a3e-2b57-4c0b-b8a4-9d0c5f0e2a77</dc:identifier><dc:date opf:event="modification">2020-02-02</dc:date><dc:date opf:event="publication">2019-06</dc:date><meta name="cover" content="cover-img"/></metadata><manifest><item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/><item id="l1" href="letter1.html" media-type="application/xhtml+xml"/><item id="l2" href="letter2.html" media-type="application/xhtml+xml"/></manifest><spine toc="ncx"><itemref idref="l1"/><itemref idref="l2"/></spine></package>"""
EPUB2_NCX = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" "http://www.daisy.org/z3986/2005/ncx-2005-1.dtd">
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head><meta name="dtb:depth" content="1"/></head><docTitle><text>Letters Home</text></docTitle><navMap><navPoint id="p1" playOrder="1"><navLabel><text>Lisboa, 3 de Maio</text></navLabel><content src="letter1.html"/></navPoint><navPoint id="p2" playOrder="2"><navLabel><text>Coimbra, 9 de Junho</text></navLabel><content src="letter2.html"/></navPoint></navMap></ncx>"""


def epub2():
    old = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Letters Home</title></head><body>{}</body></html>'
    write_zip(os.path.join(SAMPLES, "epub", "letters.epub"), [
        ("mimetype", "application/epub+zip", True),
        ("META-INF/container.xml", CONTAINER.replace("OEBPS/content.opf", "content.opf"), False),
        ("content.opf", EPUB2_OPF, False),
        ("toc.ncx", EPUB2_NCX, False),
        ("letter1.html", old.format("<h2>Lisboa, 3 de Maio</h2><p>Querida mãe, the city is loud and I love it.</p>"), False),
        ("letter2.html", old.format("<h2>Coimbra, 9 de Junho</h2><p>Exams are over. I slept for two days.</p>"), False),
    ])


# ---------------------------------------------------------------- pdf
def pdf_file(objects, info_id, root_id=1):
    """objects: list of bytes bodies, numbered from 1. Returns the file bytes with xref."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root {root_id} 0 R"
    if info_id:
        trailer += f" /Info {info_id} 0 R"
    trailer += " /ID [<6f1b9f0e3c1e4c7a9d550c2f0a7d1e11> <6f1b9f0e3c1e4c7a9d550c2f0a7d1e11>] >>\n"
    out += trailer.encode() + f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def stream(data, compress=False):
    if compress:
        data = zlib.compress(data)
        return f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode() + data + b"\nendstream"
    return f"<< /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"


def text_pdf():
    page1 = (b"BT /F1 18 Tf 72 760 Td (Minutes of the allotment meeting) Tj ET\n"
             b"BT /F1 11 Tf 72 720 Td (Present: Ana, Rui, Maria.) Tj 0 -14 Td "
             b"[(W) 80 (ater) -400 (rota) -300 (agreed:) ] TJ T* (each plot waters on its day.) Tj ET\n"
             b"BT /F1 11 Tf 1 0 0 1 72 660 Tm (The shed key stays with Maria) Tj 1 0 0 1 250 660 Tm (until June.) Tj ET\n")
    page2 = b"BT /F1 11 Tf 72 760 Td 14 TL (Next meeting: 4 May, 18:00.) Tj (Bring gloves.) ' ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 6 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 7 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        stream(page1, compress=True),
        stream(page2, compress=False),
        # Title in UTF-16BE with a BOM, as most writers encode non-ASCII titles.
        b"<< /Title <FEFF004D0069006E00750074006500730020002D00200041007000720069006C00200032003000320034> "
        b"/Author (Ana Sousa) /Creator (Writer) /Producer (LibreOffice 7.4) "
        b"/CreationDate (D:20240412183000+01'00') /ModDate (D:20240413090000Z) >>",
    ]
    return pdf_file(objects, info_id=8)


def scanned_pdf():
    # One gray 8x8 image drawn over the page: what a scanner writes, with no text.
    img = bytes([0x80] * 64)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>",
        stream(b"q 595 0 0 842 0 0 cm /Im1 Do Q\n"),
        f"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length {len(img)} >>\nstream\n".encode() + img + b"\nendstream",
        b"<< /Producer (Scanner) /CreationDate (D:20200101000000Z) >>",
    ]
    return pdf_file(objects, info_id=6)


def pdfs():
    d = os.path.join(SAMPLES, "pdf")
    with open(os.path.join(d, "minutes.pdf"), "wb") as f:
        f.write(text_pdf())
    with open(os.path.join(d, "scan.pdf"), "wb") as f:
        f.write(scanned_pdf())
    try:
        subprocess.run(["qpdf", "--static-id", "--static-aes-iv", "--encrypt", "secret", "owner", "256", "--",
                        os.path.join(d, "minutes.pdf"), os.path.join(d, "encrypted.pdf")], check=True)
        # Owner password only: opens without a password, like most "protected" PDFs.
        subprocess.run(["qpdf", "--static-id", "--static-aes-iv", "--encrypt", "", "owner", "256", "--print=none", "--",
                        os.path.join(d, "minutes.pdf"), os.path.join(d, "owner_only.pdf")], check=True)
    except FileNotFoundError:
        print("qpdf not installed: encrypted samples not regenerated")


if __name__ == "__main__":
    docx()
    odt()
    epub3()
    epub2()
    pdfs()
