{{ name }} {{ version }}
{{ valuesTable }}
