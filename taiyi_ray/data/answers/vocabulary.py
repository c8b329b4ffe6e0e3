"""Label vocabularies of the source formats: entity types, relation types and class labels.

These are the answer spaces the prompts offer and the parsers accept. They are the sources' own
schemas (type codes, topic names, hallmark names), not data. Display names turn codes into words a
model reads and writes: CMeEE's `dis` is shown as 疾病 and parsed back to `dis`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from taiyi_ray.config.data import Language

# CMeEE / CMeEE-V2 entity type codes and the organisers' Chinese names (CBLUE README).
CMEEE_TYPE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "dis": "疾病",
        "sym": "临床表现",
        "pro": "医疗程序",
        "equ": "医疗设备",
        "dru": "药物",
        "ite": "医学检验项目",
        "bod": "身体",
        "dep": "科室",
        "mic": "微生物类",
    }
)
CMEEE_TYPES: tuple[str, ...] = tuple(CMEEE_TYPE_NAMES)

# English names of the CMeEE codes, for English prompts over CMeEE-typed data.
CMEEE_TYPE_NAMES_EN: Mapping[str, str] = MappingProxyType(
    {
        "dis": "disease",
        "sym": "clinical manifestation",
        "pro": "medical procedure",
        "equ": "medical equipment",
        "dru": "drug",
        "ite": "medical test item",
        "bod": "body part",
        "dep": "department",
        "mic": "microorganism",
    }
)

# The 44 predicates of the CMeIE-V2 schema file (53 subject/predicate/object schemas).
CMEIE_PREDICATES: tuple[str, ...] = (
    "预防", "阶段", "就诊科室", "同义词", "辅助治疗", "化疗", "放射治疗", "手术治疗", "实验室检查",
    "影像学检查", "辅助检查", "组织学检查", "内窥镜检查", "筛查", "多发群体", "发病率", "发病年龄",
    "多发地区", "发病性别倾向", "死亡率", "多发季节", "传播途径", "并发症", "病理分型", "相关（导致）",
    "鉴别诊断", "相关（转化）", "相关（症状）", "临床表现", "治疗后症状", "侵及周围组织转移的症状", "病因",
    "高危因素", "风险评估因素", "病史", "遗传因素", "发病机制", "病理生理", "药物治疗", "发病部位",
    "转移部位", "外侵部位", "预后状况", "预后生存率",
)  # fmt: skip

# KUAKE-QIC query intents (CBLUE), in the order of the organisers' README.
KUAKE_QIC_LABELS: tuple[str, ...] = (
    "病情诊断", "病因分析", "治疗方案", "就医建议", "指标解读", "疾病表述", "后果表述", "注意事项",
    "功效作用", "医疗费用", "其他",
)  # fmt: skip

# CHIP-CTC's 44 eligibility-criterion categories (CBLUE `category.xlsx`, "Label Name").
CHIP_CTC_LABELS: tuple[str, ...] = (
    "Disease", "Symptom", "Sign", "Pregnancy-related Activity", "Neoplasm Status", "Non-Neoplasm Disease Stage",
    "Allergy Intolerance", "Organ or Tissue Status", "Life Expectancy", "Oral related",
    "Pharmaceutical Substance or Drug", "Therapy or Surgery", "Device", "Nursing", "Diagnostic",
    "Laboratory Examinations", "Risk Assessment", "Receptor Status", "Age", "Special Patient Characteristic",
    "Literacy", "Gender", "Education", "Address", "Ethnicity", "Consent", "Enrollment in other studies",
    "Researcher Decision", "Capacity", "Ethical Audit", "Compliance with Protocol", "Addictive Behavior",
    "Bedtime", "Exercise", "Diet", "Alcohol Consumer", "Sexual related", "Smoking Status", "Blood Donation",
    "Encounter", "Disabilities", "Healthy", "Data Accessible", "Multiple",
)  # fmt: skip

# CBLUE sentence-pair grades (the label strings of the files; CBLUE's data processors).
CHIP_STS_LABELS: tuple[str, ...] = ("0", "1")  # 1: same meaning
KUAKE_QQR_LABELS: tuple[str, ...] = ("0", "1", "2")  # 2: query2 equals or contains query1's meaning
KUAKE_QTR_LABELS: tuple[str, ...] = ("0", "1", "2", "3")  # 3: the title fully answers the query

# CMID's primary intents (label_4class; its 36 secondary intents are not checked).
CMID_4CLASS_LABELS: tuple[str, ...] = ("病症", "药物", "治疗方案", "其他")

# CHIP-CDEE event tendencies besides the empty string (affirmed); CBLUE format_checker_CDEE.py.
CDEE_TENDENCIES: tuple[str, ...] = ("不确定", "否定")

# IMCS-V2 (IMCS21) entity types and dialogue acts (lemuria-wchen/imcs21-cblue README).
IMCS_ENTITY_TYPES: tuple[str, ...] = ("Symptom", "Drug", "Drug_Category", "Medical_Examination", "Operation")
IMCS_DIALOGUE_ACTS: tuple[str, ...] = (
    "Request-Symptom", "Inform-Symptom", "Request-Etiology", "Inform-Etiology", "Request-Basic_Information",
    "Inform-Basic_Information", "Request-Existing_Examination_and_Treatment",
    "Inform-Existing_Examination_and_Treatment", "Request-Drug_Recommendation", "Inform-Drug_Recommendation",
    "Request-Medical_Advice", "Inform-Medical_Advice", "Request-Precautions", "Inform-Precautions", "Diagnose",
    "Other",
)  # fmt: skip
# symptom_type codes: the patient does not have it, has it, or the dialogue does not tell.
IMCS_SYMPTOM_STATUS: Mapping[str, str] = MappingProxyType({"0": "无", "1": "有", "2": "不确定"})

# HoC hallmarks by BLURB label index (alphabetical; ../shared/data/HoC/label_index_map.tsv), plus `none`
# for a sentence with no hallmark — scored as a label of its own, as Taiyi did.
HOC_HALLMARKS: tuple[str, ...] = (
    "activating invasion and metastasis",
    "avoiding immune destruction",
    "cellular energetics",
    "enabling replicative immortality",
    "evading growth suppressors",
    "genomic instability and mutation",
    "inducing angiogenesis",
    "resisting cell death",
    "sustaining proliferative signaling",
    "tumor promoting inflammation",
)
HOC_NONE = "none"
HOC_LABELS: tuple[str, ...] = (*HOC_HALLMARKS, HOC_NONE)

# BioCreative VII LitCovid topics.
LITCOVID_TOPICS: tuple[str, ...] = (
    "Treatment", "Diagnosis", "Prevention", "Mechanism", "Transmission", "Epidemic Forecasting", "Case Report",
)  # fmt: skip

PUBTATOR_CDR_TYPES: tuple[str, ...] = ("Chemical", "Disease")

# The nine event types of the BioNLP-ST 2011 GENIA event task (GE11), the served default for ee.
GENIA_EVENT_TYPES: tuple[str, ...] = (
    "Gene_expression", "Transcription", "Protein_catabolism", "Phosphorylation", "Localization", "Binding",
    "Regulation", "Positive_regulation", "Negative_regulation",
)  # fmt: skip
CID = "CID"

# Relation type -> display name per language (types absent here are shown as they are).
RELATION_NAMES: Mapping[str, Mapping[Language, str]] = MappingProxyType(
    {CID: MappingProxyType({"en": "chemical-induced disease", "zh": "化学物质导致疾病"})}
)

YES_NO_MAYBE: tuple[str, ...] = ("yes", "no", "maybe")
YES_NO_MAYBE_ZH: Mapping[str, str] = MappingProxyType({"yes": "是", "no": "否", "maybe": "不确定"})

# Defaults per format, used when a catalogue entry does not name its own vocabulary.
DEFAULT_ENTITY_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "pubtator_cdr": PUBTATOR_CDR_TYPES,
        "cmeee": CMEEE_TYPES,
        "cblue_cmeee": CMEEE_TYPES,
        "cblue_imcs_v2_ner": IMCS_ENTITY_TYPES,
    }
)
DEFAULT_RELATION_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"pubtator_cdr": (CID,), "cmeie": CMEIE_PREDICATES, "cblue_cmeie": CMEIE_PREDICATES}
)
DEFAULT_LABEL_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "hoc_tsv": HOC_LABELS,
        "kuake_qic": KUAKE_QIC_LABELS,
        "cblue_kuake_qic": KUAKE_QIC_LABELS,
        "litcovid_csv": LITCOVID_TOPICS,
        "cblue_chip_ctc": CHIP_CTC_LABELS,
        "cblue_chip_sts": CHIP_STS_LABELS,
        "covid_similarity_csv": CHIP_STS_LABELS,  # the same 0/1 "same meaning" labels
        "cblue_kuake_qqr": KUAKE_QQR_LABELS,
        "cblue_kuake_qtr": KUAKE_QTR_LABELS,
        "cblue_imcs_v2_dac": IMCS_DIALOGUE_ACTS,
    }
)


def entity_type_name(entity_type: str, language: Language) -> str:
    """What a prompt and an answer call a type: CMeEE codes become words, other types stay as they are."""
    if entity_type in CMEEE_TYPE_NAMES:
        return CMEEE_TYPE_NAMES[entity_type] if language == "zh" else CMEEE_TYPE_NAMES_EN[entity_type]
    return entity_type


def relation_type_name(relation_type: str, language: Language) -> str:
    names = RELATION_NAMES.get(relation_type)
    return names[language] if names else relation_type
