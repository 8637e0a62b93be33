<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!-- smqgis: volumetric soil moisture (band 1, m3/m3), 0 (dry, brown) to 0.5 (wet, blue); nodata transparent. -->
<qgis version="3.22.16-Białowieża" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">
  <flags>
    <Identifiable>1</Identifiable>
    <Removable>1</Removable>
    <Searchable>0</Searchable>
    <Private>0</Private>
  </flags>
  <customproperties>
    <Option type="Map">
      <Option name="identify/format" type="QString" value="Value"/>
    </Option>
  </customproperties>
  <pipe>
    <provider>
      <resampling enabled="false" maxOversampling="2" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour"/>
    </provider>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="0" classificationMax="0.5" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="0" maximumValue="0.5" labelPrecision="2">
          <colorramp type="gradient" name="[source]">
            <Option type="Map">
              <Option name="color1" type="QString" value="140,81,10,255"/>
              <Option name="color2" type="QString" value="33,102,172,255"/>
              <Option name="discrete" type="QString" value="0"/>
              <Option name="rampType" type="QString" value="gradient"/>
              <Option name="stops" type="QString" value="0.2;216,179,101,255:0.4;246,232,122,255:0.6;127,191,77,255:0.8;53,151,143,255"/>
            </Option>
            <prop k="color1" v="140,81,10,255"/>
            <prop k="color2" v="33,102,172,255"/>
            <prop k="discrete" v="0"/>
            <prop k="rampType" v="gradient"/>
            <prop k="stops" v="0.2;216,179,101,255:0.4;246,232,122,255:0.6;127,191,77,255:0.8;53,151,143,255"/>
          </colorramp>
          <item alpha="255" value="0" label="0.00 m3/m3 (dry)" color="#8c510a"/>
          <item alpha="255" value="0.1" label="0.10 m3/m3" color="#d8b365"/>
          <item alpha="255" value="0.2" label="0.20 m3/m3" color="#f6e87a"/>
          <item alpha="255" value="0.3" label="0.30 m3/m3" color="#7fbf4d"/>
          <item alpha="255" value="0.4" label="0.40 m3/m3" color="#35978f"/>
          <item alpha="255" value="0.5" label="0.50 m3/m3 (wet)" color="#2166ac"/>
          <rampLegendSettings minimumLabel="" maximumLabel="" prefix="" suffix=" m3/m3" direction="0" useContinuousLegend="0" orientation="2">
            <numericFormat id="basic">
              <Option type="Map">
                <Option name="decimal_separator" type="QChar" value=""/>
                <Option name="decimals" type="int" value="2"/>
                <Option name="rounding_type" type="int" value="0"/>
                <Option name="show_plus" type="bool" value="false"/>
                <Option name="show_thousand_separator" type="bool" value="true"/>
                <Option name="show_trailing_zeros" type="bool" value="true"/>
                <Option name="thousand_separator" type="QChar" value=""/>
              </Option>
            </numericFormat>
          </rampLegendSettings>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
