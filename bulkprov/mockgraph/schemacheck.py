"""What Graph accepts as a synchronizationSchema body (PUT .../jobs/{id}/schema).

The property names and enumerations are those of the Graph v1.0 metadata (synchronizationSchema,
synchronizationRule, objectMapping, attributeMapping, attributeMappingSource, filter,
filterGroup, filterClause, filterOperand, directoryDefinition, objectDefinition,
attributeDefinition and their key/value entries). A body with a property the type does not
have, a value of the wrong JSON type or an enumeration value Graph does not know is refused
with the message Graph gives for it, naming the offending path.
"""

from __future__ import annotations

from typing import Any

# type name -> {property: kind}; a kind is "str", "bool", "int", "enum:<name>", a type name,
# or "[...]" for a collection of it.
_TYPES: dict[str, dict[str, str]] = {
    "synchronizationSchema": {
        "id": "str",
        "version": "str",
        "synchronizationRules": "[synchronizationRule]",
        "directories": "[directoryDefinition]",
    },
    "synchronizationRule": {
        "containerFilter": "containerFilter",
        "editable": "bool",
        "groupFilter": "groupFilter",
        "id": "str",
        "metadata": "[stringKeyStringValuePair]",
        "name": "str",
        "objectMappings": "[objectMapping]",
        "priority": "int",
        "sourceDirectoryName": "str",
        "targetDirectoryName": "str",
    },
    "containerFilter": {"includedContainers": "[str]"},
    "groupFilter": {"includedGroups": "[str]"},
    "stringKeyStringValuePair": {"key": "str", "value": "str"},
    "objectMapping": {
        "attributeMappings": "[attributeMapping]",
        "enabled": "bool",
        "flowTypes": "enum:objectFlowTypes",
        "metadata": "[objectMappingMetadataEntry]",
        "name": "str",
        "scope": "filter",
        "sourceObjectName": "str",
        "targetObjectName": "str",
    },
    "objectMappingMetadataEntry": {"key": "str", "value": "str"},
    "attributeMapping": {
        "defaultValue": "str",
        "exportMissingReferences": "bool",
        "flowBehavior": "enum:attributeFlowBehavior",
        "flowType": "enum:attributeFlowType",
        "matchingPriority": "int",
        "source": "attributeMappingSource",
        "targetAttributeName": "str",
    },
    "attributeMappingSource": {
        "expression": "str",
        "name": "str",
        "parameters": "[stringKeyAttributeMappingSourceValuePair]",
        "type": "enum:attributeMappingSourceType",
    },
    "stringKeyAttributeMappingSourceValuePair": {"key": "str", "value": "attributeMappingSource"},
    "filter": {
        "categoryFilterGroups": "[filterGroup]",
        "groups": "[filterGroup]",
        "inputFilterGroups": "[filterGroup]",
    },
    "filterGroup": {"clauses": "[filterClause]", "name": "str"},
    "filterClause": {
        "operatorName": "str",
        "sourceOperandName": "str",
        "targetOperand": "filterOperand",
    },
    "filterOperand": {"values": "[str]"},
    "directoryDefinition": {
        "id": "str",
        "discoverabilities": "str",
        "discoveryDateTime": "str",
        "name": "str",
        "objects": "[objectDefinition]",
        "readOnly": "bool",
        "version": "str",
    },
    "objectDefinition": {
        "attributes": "[attributeDefinition]",
        "metadata": "[objectDefinitionMetadataEntry]",
        "name": "str",
        "supportedApis": "[str]",
    },
    "objectDefinitionMetadataEntry": {"key": "str", "value": "str"},
    "attributeDefinition": {
        "anchor": "bool",
        "apiExpressions": "[stringKeyStringValuePair]",
        "caseExact": "bool",
        "defaultValue": "str",
        "flowNullValues": "bool",
        "metadata": "[attributeDefinitionMetadataEntry]",
        "multivalued": "bool",
        "mutability": "enum:mutability",
        "name": "str",
        "referencedObjects": "[referencedObject]",
        "required": "bool",
        "type": "enum:attributeType",
    },
    "attributeDefinitionMetadataEntry": {"key": "str", "value": "str"},
    "referencedObject": {"referencedObjectName": "str", "referencedProperty": "str"},
}
_ENUMS: dict[str, frozenset[str]] = {
    "attributeFlowBehavior": frozenset({"FlowWhenChanged", "FlowAlways"}),
    "attributeFlowType": frozenset(
        {"Always", "ObjectAddOnly", "MultiValueAddOnly", "ValueAddOnly", "AttributeAddOnly"}
    ),
    "attributeMappingSourceType": frozenset({"Attribute", "Constant", "Function"}),
    "mutability": frozenset({"ReadWrite", "ReadOnly", "Immutable", "WriteOnly"}),
    "attributeType": frozenset({"String", "Integer", "Reference", "Binary", "Boolean", "DateTime"}),
    "objectFlowTypes": frozenset({"None", "Add", "Update", "Delete"}),  # flags: "Add,Update"
}
# Non-nullable properties (Nullable="false" in the metadata): null is refused for them.
_NOT_NULL = frozenset({"bool", "int", *(f"enum:{e}" for e in _ENUMS)})


class SchemaBodyError(ValueError):
    """The body is not a synchronizationSchema Graph would accept; the message says where."""


def check_schema(body: Any) -> None:
    """Raise :class:`SchemaBodyError` for the first problem of a schema body."""
    _check(body, "synchronizationSchema", "")


def _check(value: Any, kind: str, path: str) -> None:
    where = path or "the body"
    if value is None:
        if kind in _NOT_NULL:
            raise SchemaBodyError(
                f"A null value was found for the property '{where}', which is not nullable."
            )
        return
    if kind.startswith("["):
        if not isinstance(value, list):
            raise SchemaBodyError(f"The property '{where}' must be an array.")
        for i, item in enumerate(value):
            _check(item, kind[1:-1], f"{path}[{i}]")
        return
    if kind in _SCALARS or kind.startswith("enum:"):
        _check_scalar(value, kind, where)
        return
    props = _TYPES[kind]
    if not isinstance(value, dict):
        raise SchemaBodyError(f"The property '{where}' must be an object of type '{kind}'.")
    for key, sub in value.items():
        if "@odata." in key:
            continue
        if key not in props:
            raise SchemaBodyError(
                f"Property '{key}' does not exist on type 'microsoft.graph.{kind}' (at '{where}')."
            )
        _check(sub, props[key], f"{path}.{key}" if path else key)


_SCALARS = {"str": "a string", "bool": "a boolean", "int": "an integer"}


def _check_scalar(value: Any, kind: str, where: str) -> None:
    """A string, boolean, integer or enumeration member (``enum:<name>``)."""
    if kind.startswith("enum:"):
        name = kind[5:]
        members = (
            [m.strip() for m in value.split(",")]
            if isinstance(value, str) and name == "objectFlowTypes"
            else [value]
        )
        if not all(isinstance(m, str) and m in _ENUMS[name] for m in members):
            raise SchemaBodyError(
                f"The value '{value}' of '{where}' is not a member of the {name} enumeration."
            )
        return
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
    }[kind]
    if not ok:
        raise SchemaBodyError(f"The property '{where}' must be {_SCALARS[kind]}.")
